"""cdl.cuda._launch: the launch grid and flat views of device arrays."""
import numpy as np
import pytest
from numba import cuda

from cdl.cuda import _launch


@pytest.mark.parametrize("n, blocks", [(0, 1), (1, 1), (256, 1), (257, 2), (256 * 4096, 4096),
                                       (10**9, 4096)])
def test_grid(n, blocks):
    assert _launch.grid(n) == (blocks, _launch.THREADS)


def test_flat_is_a_view_without_a_copy():
    d = cuda.to_device(np.arange(6, dtype=np.float32).reshape(2, 3))
    f = _launch.flat(d)
    assert f.shape == (6,)
    f[4:5].copy_to_device(np.array([40], np.float32))
    assert d.copy_to_host()[1, 1] == 40
    one = cuda.to_device(np.zeros(3))
    assert _launch.flat(one) is one
