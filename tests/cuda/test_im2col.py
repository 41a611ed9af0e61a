"""CUDA im2col / col2im (the kernels behind cdl.ops) against the CPU kernels; cdl.ops on device
arrays. Tiny shapes: the simulator runs every thread in Python."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl import ops
from cdl.backend import is_device_array, kernels_for
from cdl.kernels import reference as ref

from ..conftest import host, on
from .test_dense import compile_for_gpu

CASES = [  # x shape, (kh, kw), (sh, sw), (ph, pw)
    ((2, 2, 4, 4), (3, 3), (1, 1), (1, 1)),   # same padding, overlapping windows
    ((1, 2, 5, 4), (2, 3), (2, 1), (1, 0)),   # odd, rectangular
    ((1, 1, 5, 5), (2, 2), (3, 3), (0, 0)),   # stride > kernel: pixels no window reads
    ((1, 1, 2, 2), (4, 4), (1, 1), (1, 1)),   # kernel larger than the image
]


def _geometry(shape, k, s, p):
    oh, ow = ref.out_hw(*shape[2:], *k, *s, *p)
    return (*k, *s, *p, oh, ow)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_im2col_and_col2im_match_cpu(case, dtype):
    shape, k, s, p = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    g = _geometry(shape, k, s, p)
    rows, cols = shape[0] * g[6] * g[7], shape[1] * k[0] * k[1]
    col = CPU.im2col_rows(x, *g, np.empty((rows, cols), dtype))
    K = kernels_for(on("cuda", x))
    colg = K.im2col_rows(on("cuda", x), *g, on("cuda", np.full((rows, cols), np.nan, dtype)))
    np.testing.assert_array_equal(host(colg), col)
    c = rng.standard_normal(col.shape).astype(dtype)
    dx = CPU.col2im_rows(c, *g, np.full(shape, 7, dtype))  # both overwrite out
    dxg = K.col2im_rows(on("cuda", c), *g, on("cuda", np.full(shape, 7, dtype)))
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(host(dxg), dx, rtol=tol, atol=tol)


def test_ops_run_on_the_arrays_device(device):
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 5)).astype(np.float32)
    col = ops.im2col(on(device, x), 3, 2, stride=(1, 2), pad=1)
    assert is_device_array(col) == (device == "cuda") and col.dtype == np.float32
    np.testing.assert_array_equal(host(col), ref.im2col(x, 3, 2, 1, 2, 1, 1))
    dx = ops.col2im(col, x.shape, 3, 2, stride=(1, 2), pad=1)
    assert is_device_array(dx) == (device == "cuda") and dx.shape == x.shape
    want = ref.col2im(host(col), x.shape, 3, 2, 1, 2, 1, 1)
    np.testing.assert_allclose(host(dx), want, rtol=1e-6, atol=1e-6)


def test_cpu_kernels_check_what_the_compiled_loops_trust():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"im2col: expected C-contiguous float32 arrays, out"):
        CPU.im2col_rows(x, 2, 2, 1, 1, 0, 0, 3, 3, np.zeros((9, 5), np.float32))
    with pytest.raises(ValueError, match=r"col2im: col of shape \(9, 5\) does not match"):
        CPU.col2im_rows(np.zeros((9, 5), np.float32), 2, 2, 1, 1, 0, 0, 3, 3, x)
    with pytest.raises(ValueError, match=r"col2im: expected C-contiguous float64 .* out float32"):
        CPU.col2im_rows(np.zeros((9, 4)), 2, 2, 1, 1, 0, 0, 3, 3, x)


@pytest.mark.slow
def test_kernels_compile_for_a_gpu():
    compile_for_gpu("""
        from cdl.cuda import im2col
        for dt in (T.float32, T.float64):
            check(im2col._im2col_k, arr(dt, 4), *[i64] * 8, arr(dt, 2))
            check(im2col._col2im_k, arr(dt, 2), *[i64] * 8, arr(dt, 4))
    """)
