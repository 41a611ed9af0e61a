"""cdl.cuda.memory: allocation, fill and copy on the device, twins of cdl.kernels.memory."""
import numpy as np
import pytest
from numba import cuda

from cdl import kernels as CPU
from cdl.cuda import memory as G


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_zeros_and_fill(dtype):
    z = G.zeros((2, 3), dtype)
    assert z.shape == (2, 3) and z.dtype == dtype and z.is_c_contiguous()
    np.testing.assert_array_equal(z.copy_to_host(), CPU.zeros((2, 3), dtype))
    assert G.fill(z, 7) is z
    np.testing.assert_array_equal(z.copy_to_host(), np.full((2, 3), 7, dtype))
    like = G.zeros_like(z)
    assert like.shape == z.shape and like.dtype == z.dtype and not like.copy_to_host().any()
    e = G.empty_like(z)
    assert e.shape == z.shape and e.dtype == z.dtype


def test_copy_casts_to_the_output_dtype():
    a = np.array([[1.25, -2.5], [3.0, 4.75]])
    out = G.empty((2, 2), np.float32)
    assert G.copy(cuda.to_device(a), out) is out
    np.testing.assert_array_equal(out.copy_to_host(), CPU.copy(a, np.empty((2, 2), np.float32)))


def test_empty_arrays_are_left_alone():
    z = G.zeros((0, 4), np.float32)
    assert z.shape == (0, 4)
    assert G.fill(z, 1) is z and G.copy(z, G.empty((0, 4), np.float64)).shape == (0, 4)
