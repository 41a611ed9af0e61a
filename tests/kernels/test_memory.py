"""cdl.kernels.memory: host allocation and copies behind K.empty, K.zeros_like, K.copy."""
import numpy as np
import pytest

from cdl.kernels import memory as K


def test_allocation():
    for a in (K.empty((2, 3), np.float32), K.zeros((2, 3), np.float32)):
        assert a.shape == (2, 3) and a.dtype == np.float32 and a.flags.c_contiguous
    assert not K.zeros((4,), np.int64).any()
    src = np.ones((3, 4), np.float64)[:, ::2]  # a strided view: the result is contiguous
    for a in (K.empty_like(src), K.zeros_like(src)):
        assert a.shape == (3, 2) and a.dtype == np.float64 and a.flags.c_contiguous
    assert not K.zeros_like(src).any()


def test_fill_and_copy_return_out():
    out = np.empty(3, np.float32)
    assert K.fill(out, 2.5) is out and (out == 2.5).all()
    assert K.copy(np.array([1.5, -2.0, 3.0]), out) is out
    np.testing.assert_array_equal(out, [1.5, -2.0, 3.0])


@pytest.mark.parametrize("src, dst", [(np.float32, np.float16), (np.float16, np.float32),
                                      (np.float64, np.float32)])
def test_copy_casts_as_numpy_does(src, dst, rng):
    a = (rng.standard_normal((3, 5)) * 100).astype(src)
    out = np.empty((3, 5), dst)
    np.testing.assert_array_equal(K.copy(a, out), a.astype(dst))


def test_copy_refuses_an_unsafe_kind():
    with pytest.raises(TypeError):
        K.copy(np.array([1.5]), np.empty(1, np.int32))
