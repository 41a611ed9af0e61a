"""CUDA pooling twins against the CPU kernels (ties, NaN, padding included); the pooling
layers on the GPU against the CPU."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl import layers as L

from ..conftest import host, on
from .test_dense import check_layer_on_device, compile_for_gpu, tol

CASES = [  # x shape, kernel, stride, pad
    ((2, 2, 5, 5), (3, 3), (2, 2), (1, 1)),   # padding, overlapping windows
    ((1, 2, 5, 5), (2, 2), (2, 2), (0, 0)),   # the CPU's 2x2 kernels; odd size: a row left over
    ((1, 1, 4, 5), (2, 3), (1, 2), (1, 1)),   # rectangular
    ((1, 2, 5, 5), (1, 1), (3, 3), (0, 0)),   # stride > kernel: pixels no window reads
]


def _out(shape, k, s, p):
    return (*shape[:2], (shape[2] + 2 * p[0] - k[0]) // s[0] + 1,
            (shape[3] + 2 * p[1] - k[1]) // s[1] + 1)


def _maxpool_both(x, k, s, p, dout):
    """((y, dx) on the CPU, (y, dx) on the GPU)."""
    g = (*k, *s, *p)
    y = CPU.maxpool2d_forward(x, *g, np.empty(dout.shape, x.dtype))
    dx = CPU.maxpool2d_backward(dout, x, y, *g, np.empty(x.shape, dout.dtype))
    import cdl.cuda as G
    xg, dg = on("cuda", x, dout)
    yg = G.maxpool2d_forward(xg, *g, G.empty(dout.shape, x.dtype))
    dxg = G.maxpool2d_backward(dg, xg, yg, *g, G.empty(x.shape, dout.dtype))
    return (y, dx), (host(yg), host(dxg))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_matches_cpu_with_ties(case, dtype):
    """Values from a few levels: many ties, the first maximum (row-major) takes the gradient.
    (A pixel routed several windows sums them in another order than the CPU's fast loops:
    equal to rounding; a wrong route would differ by a whole dout.)"""
    shape, k, s, p = case
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, shape).astype(dtype)
    dout = rng.standard_normal(_out(*case)).astype(dtype)
    (y, dx), (yg, dxg) = _maxpool_both(x, k, s, p, dout)
    np.testing.assert_array_equal(yg, y)
    np.testing.assert_allclose(dxg, dx, **tol(dtype))


@pytest.mark.parametrize("case", CASES[:2])
def test_maxpool_nan_and_nonfinite_dout_match_cpu(case):
    """NaN in x (propagated; the gradient goes to the first NaN) and inf in dout."""
    shape, k, s, p = case
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, shape).astype(np.float64)
    x[0, 0, 1, 1] = x[0, 1, 2, 3] = x[0, 1, 3, 2] = np.nan
    dout = rng.standard_normal(_out(*case))
    dout[0, 0, 0, 0], dout[0, 1, -1, -1] = np.inf, -np.inf
    (y, dx), (yg, dxg) = _maxpool_both(x, k, s, p, dout)
    assert np.isnan(y).any()
    np.testing.assert_array_equal(yg, y)
    np.testing.assert_allclose(dxg, dx, **tol(np.float64))


def test_maxpool_padding_never_wins():
    x = -np.ones((1, 1, 3, 3))  # every value below the zero padding
    dout = np.ones((1, 1, 2, 2))
    (y, dx), (yg, dxg) = _maxpool_both(x, (3, 3), (2, 2), (1, 1), dout)
    np.testing.assert_array_equal(yg, -1)
    np.testing.assert_array_equal(dxg, dx)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avgpool_matches_cpu(case, dtype):
    """Divides by the full window, padding included; same rounding as the CPU kernels."""
    shape, k, s, p = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(_out(*case)).astype(dtype)
    g = (*k, *s, *p)
    y = CPU.avgpool2d_forward(x, *g, np.empty(dout.shape, dtype))
    dx = CPU.avgpool2d_backward(dout, *g, np.full(shape, np.nan, dtype))
    import cdl.cuda as G
    xg, dg = on("cuda", x, dout)
    yg = G.avgpool2d_forward(xg, *g, G.empty(dout.shape, dtype))
    dxg = G.avgpool2d_backward(dg, *g, on("cuda", np.full(shape, np.nan, dtype)))
    np.testing.assert_allclose(host(yg), y, **tol(dtype))
    np.testing.assert_allclose(host(dxg), dx, **tol(dtype))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avgpool_matches_cpu(shape, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(shape[:2]).astype(dtype)
    y = CPU.global_avgpool2d_forward(x, np.empty(shape[:2], dtype))
    dx = CPU.global_avgpool2d_backward(dout, np.empty(shape, dtype))
    import cdl.cuda as G
    xg, dg = on("cuda", x, dout)
    yg = G.global_avgpool2d_forward(xg, G.empty(shape[:2], dtype))
    dxg = G.global_avgpool2d_backward(dg, on("cuda", np.full(shape, np.nan, dtype)))
    np.testing.assert_allclose(host(yg), y, **tol(dtype))
    np.testing.assert_array_equal(host(dxg), dx)


@pytest.mark.parametrize("make,shape", [
    (lambda: L.MaxPool2D(3, stride=2, pad=1), (2, 2, 5, 5)),
    (lambda: L.MaxPool2D(2), (1, 2, 4, 5)),
    (lambda: L.AvgPool2D(3, stride=2, pad=1), (2, 2, 5, 5)),
    (lambda: L.GlobalAvgPool2D(), (2, 3, 3, 3)),
], ids=["max3s2p1", "max2", "avg3s2p1", "global"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_layers_on_device(device, make, shape, dtype):
    x = np.random.default_rng(4).permutation(np.prod(shape)).reshape(shape).astype(dtype) * 0.25
    check_layer_on_device(make, x, device)


@pytest.mark.slow
def test_kernels_compile_for_a_gpu():
    """float32 and float64, and dout / dx of another dtype than x and y."""
    compile_for_gpu("""
        from cdl.cuda import pool
        g = [i64] * 6
        for dt, gt in ((T.float32, T.float32), (T.float64, T.float64), (T.float64, T.float32)):
            x, d = arr(dt, 4), arr(gt, 4)
            check(pool._maxpool2d_forward_k, x, *g, x)
            check(pool._maxpool2d_backward_k, d, x, x, *g, d)
            check(pool._avgpool2d_forward_k, x, *g, x)
            check(pool._avgpool2d_backward_k, d, *g, d)
            check(pool._global_avgpool2d_forward_k, arr(dt, 2), arr(dt, 1))
            check(pool._global_avgpool2d_backward_k, arr(gt, 1), arr(gt, 2))
    """)
