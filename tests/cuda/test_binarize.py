"""CUDA twins of cdl.kernels.binarize against the CPU kernels (the simulator without a GPU)."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl.backend import kernels_for

from ..conftest import host, on
from .test_dense import compile_for_gpu

DTYPES = [np.float32, np.float64]
# (A, F, B) views: an affine output, a conv output, conv weights, a channel of 300 elements
CHANNEL_SHAPES = [(5, 3, 1), (2, 3, 4), (1, 4, 7), (3, 2, 100)]


def _gpu(*arrays):
    moved = on("cuda", *arrays)
    moved = moved if isinstance(moved, list) else [moved]
    return kernels_for(moved[0]), moved


def _values(rng, shape, dtype):
    """Values around the STE's kinks and the sign's: exact 0, -0, +-1 and both sides of them."""
    x = rng.uniform(-2, 2, shape)
    edge = np.array([0.0, -0.0, 1.0, -1.0, 1.0 + 1e-6, -1.0 - 1e-6])
    x.reshape(-1)[:min(x.size, edge.size)] = edge[:x.size]
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 4)])
def test_sign_and_ste_match_cpu(dtype, shape):
    rng = np.random.default_rng(0)
    x, d = _values(rng, shape, dtype), rng.standard_normal(shape).astype(dtype)
    d.reshape(-1)[-1] = np.nan  # NaN dout stays NaN where it passes, 0 where blocked
    x.reshape(-1)[-1] = 5.0 if x.size > 6 else x.reshape(-1)[-1]
    y = CPU.sign_forward(x, np.empty_like(x))
    dx = CPU.ste_backward(d, x, np.empty_like(x))
    K, (xg, dg) = _gpu(x, d)
    np.testing.assert_array_equal(host(K.sign_forward(xg, K.empty_like(xg))), y)
    np.testing.assert_array_equal(host(K.ste_backward(dg, xg, K.empty_like(xg))), dx)
    assert K.ste_backward(dg, xg, dg) is dg  # in place
    np.testing.assert_array_equal(host(dg), dx)


def test_sign_of_nan_is_minus_one_on_both_sides():
    x = np.array([np.nan, 0.0, -0.0, -3.0], np.float32)
    K, (xg,) = _gpu(x)
    want = [-1, 1, 1, -1]
    np.testing.assert_array_equal(CPU.sign_forward(x, np.empty_like(x)), want)
    np.testing.assert_array_equal(host(K.sign_forward(xg, K.empty_like(xg))), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_in_place_matches_cpu(dtype):
    w = np.array([[-3.0, -1.0, -0.5], [0.0, 1.0, 2.5], [np.nan, 0.99, -1.01]], dtype)
    want = CPU.clip(w, -1.0, 1.0, w.copy())
    K, (wg,) = _gpu(w)
    assert K.clip(wg, -1.0, 1.0, wg) is wg
    np.testing.assert_array_equal(host(wg), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [True, False])
def test_clip_sign_forward_matches_cpu(dtype, scale):
    """The fused weight pass, in place and into another array, with and without alpha."""
    w = _values(np.random.default_rng(3), (2, 3, 4), dtype)
    w.reshape(-1)[-1] = np.nan
    y, alpha = np.empty_like(w), np.empty(3, dtype) if scale else None
    clipped = w.copy()
    CPU.clip_sign_forward(clipped, -1.0, 1.0, clipped, y, alpha)
    K, (wg,) = _gpu(w)
    yg, ag, og = K.empty_like(wg), K.empty((3,), dtype) if scale else None, K.empty_like(wg)
    assert K.clip_sign_forward(wg, -1.0, 1.0, og, yg, ag) is yg
    np.testing.assert_array_equal(host(og), clipped)
    np.testing.assert_array_equal(host(yg), y)
    if scale:
        np.testing.assert_allclose(host(ag), alpha, rtol=1e-6)
    K.clip_sign_forward(wg, -1.0, 1.0, wg, yg, ag)  # in place
    np.testing.assert_array_equal(host(wg), clipped)
    np.testing.assert_array_equal(host(yg), y)


@pytest.mark.slow  # seconds in the CUDA simulator
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CHANNEL_SHAPES)
def test_channel_kernels_match_cpu(dtype, shape):
    rng = np.random.default_rng(1)
    F = shape[1]
    x, z = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    alpha, b = rng.uniform(0.1, 1, F).astype(dtype), rng.standard_normal(F).astype(dtype)
    w = x.copy()
    w.reshape(-1)[0] = 0.0  # sgn(0) = 0 in the abs-mean backward
    tol = dict(rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    K, (xg, zg, ag, bg, wg) = _gpu(x, z, alpha, b, w)
    for a_, b_, ag_, bg_ in [(alpha, b, ag, bg), (alpha, None, ag, None), (None, b, None, bg),
                             (None, None, None, None)]:
        want = CPU.channel_scale_shift(x, a_, b_, np.empty_like(x))
        got = K.channel_scale_shift(xg, ag_, bg_, K.empty_like(xg))
        np.testing.assert_allclose(host(got), want, **tol)
    for name, args in [("channel_sum", (x,)), ("channel_dot", (x, z)),
                       ("channel_abs_mean", (w,))]:
        want = getattr(CPU, name)(*args, np.empty(F, dtype))
        gargs = {id(x): xg, id(z): zg, id(w): wg}
        got = getattr(K, name)(*[gargs[id(a)] for a in args], K.empty((F,), dtype))
        np.testing.assert_allclose(host(got), want, **tol, err_msg=name)
    dw = z.copy()
    want = CPU.channel_abs_mean_backward(b, w, dw)
    dwg = K.copy(zg, K.empty_like(zg))
    assert K.channel_abs_mean_backward(bg, wg, dwg) is dwg
    np.testing.assert_allclose(host(dwg), want, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stochastic_sign_on_the_gpu(dtype):
    """+-1 only, saturated where hard_sigmoid is 0 or 1, one draw from rng per call."""
    x = np.array([-3.0, -1.0, -1.5, 1.0, 2.0, 0.0, 0.3, -0.4] * 4, dtype)
    K, (xg,) = _gpu(x)
    rng = np.random.default_rng(5)
    y = host(K.stochastic_sign_forward(xg, rng, K.empty_like(xg)))
    assert set(np.unique(y)) <= {-1.0, 1.0}
    sure = np.abs(x) >= 1
    np.testing.assert_array_equal(y[sure], np.sign(x[sure]))
    again = host(K.stochastic_sign_forward(xg, np.random.default_rng(5), K.empty_like(xg)))
    np.testing.assert_array_equal(again, y)  # the seed comes from rng: same rng, same signs
    after = np.random.default_rng(5)
    after.integers(2**63)
    assert rng.integers(2**63) == after.integers(2**63)
    # the undecided half flips with different seeds at some point
    draws = [host(K.stochastic_sign_forward(xg, np.random.default_rng(s), K.empty_like(xg)))
             for s in range(4)]
    assert any((d[~sure] != draws[0][~sure]).any() for d in draws[1:])


@pytest.mark.slow
def test_fused_kernel_compiles_for_a_gpu():
    """_clip_sign_k with the types clip_sign_forward passes (the other kernels of this twin
    are in tests/cuda/test_compile.py's list)."""
    compile_for_gpu("""
        from cdl.cuda import binarize
        for dt in (T.float32, T.float64):
            a = arr(dt, 1)
            check(binarize._clip_sign_k, a, dt, dt, a, a)
    """)
