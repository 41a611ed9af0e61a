"""Pooling kernels (through the layers' allocation) against the NumPy reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl import layers as L
from cdl.kernels import reference as ref


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 9))
    W = draw(st.integers(max(1, kw - 2 * pw), 9))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W), (kh, kw), (sh, sw), (ph, pw)


def _distinct(shape, rng, dtype):
    """Values with no ties, so the argmax is unambiguous."""
    return (rng.permutation(np.prod(shape)).reshape(shape) * 0.25 - 3).astype(dtype)


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.sampled_from([np.float32, np.float64]))
def test_maxpool_matches_reference(case, dtype):
    shape, k, s, p = case
    rng = np.random.default_rng(0)
    x = _distinct(shape, rng, dtype)
    layer = L.MaxPool2D(k, stride=s, pad=p)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, ref.maxpool2d_forward(x, *k, *s, *p))
    dout = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.maxpool2d_backward(dout, x, *k, *s, *p), rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.sampled_from([np.float32, np.float64]))
def test_avgpool_matches_reference(case, dtype):
    shape, k, s, p = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    layer = L.AvgPool2D(k, stride=s, pad=p)
    y = layer.forward(x)
    np.testing.assert_allclose(y, ref.avgpool2d_forward(x, *k, *s, *p), rtol=1e-5, atol=1e-6)
    dout = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(layer.backward(dout), ref.avgpool2d_backward(dout, shape, *k, *s, *p),
                               rtol=1e-5, atol=1e-6)


@st.composite
def tied_pool_cases(draw):
    """pool_cases plus the 2x2 stride-2 fast path, with small-integer x (many ties), NaN
    pixels and, sometimes, a non-finite dout."""
    shape, k, s, p = draw(st.one_of(pool_cases(), st.tuples(
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9)),
        st.just((2, 2)), st.just((2, 2)), st.just((0, 0)))))
    return shape, k, s, p, draw(st.integers(0, 3)), draw(st.sampled_from([None, np.inf, np.nan]))


@settings(max_examples=80, deadline=None)
@given(tied_pool_cases(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_maxpool_ties_nan_and_nonfinite_dout_match_reference(case, dtype, seed):
    """The first maximum (row-major) of a window takes its gradient, a NaN window's first
    NaN; an inf or NaN in dout reaches that pixel only. Integer values: sums are exact."""
    shape, k, s, p, nans, bad_dout = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(dtype)
    x.flat[rng.integers(0, x.size, nans)] = np.nan
    layer = L.MaxPool2D(k, stride=s, pad=p)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, ref.maxpool2d_forward(x, *k, *s, *p))
    dout = rng.integers(-3, 4, y.shape).astype(dtype)
    if bad_dout is not None:
        dout.flat[rng.integers(0, dout.size)] = bad_dout
    np.testing.assert_array_equal(layer.backward(dout), ref.maxpool2d_backward(dout, x, *k, *s, *p))


@pytest.mark.parametrize("k,s,p", [(2, 1, 1), (3, 2, 1), (3, 1, 1)])
def test_maxpool_padding_never_wins(k, s, p):
    x = -np.ones((1, 1, 2, 3), np.float32) * 5
    layer = L.MaxPool2D(k, stride=s, pad=p)
    y = layer.forward(x)
    assert (y == -5).all()
    dout = np.arange(1, y.size + 1, dtype=np.float32).reshape(y.shape)
    dx = layer.backward(dout)
    assert dx.sum() == dout.sum()  # nothing routed to padding
    np.testing.assert_array_equal(dx, ref.maxpool2d_backward(dout, x, k, k, s, s, p, p))
    # All -inf: padding ties with the pixels and still never wins (the reference, which pads
    # with -inf and takes np.argmax, would route to padding here): same routing as for -5.
    x[...] = -np.inf
    assert (layer.forward(x) == -np.inf).all()
    np.testing.assert_array_equal(layer.backward(dout), dx)


@pytest.mark.parametrize("k,s", [(2, 2), (3, 1), (3, 2)])
def test_maxpool_routes_to_the_first_nan(k, s):
    x = np.arange(36, dtype=np.float64).reshape(1, 1, 6, 6)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # both in the first window: (0, 1) comes first
    layer = L.MaxPool2D(k, stride=s)
    y = layer.forward(x)
    assert np.isnan(y[0, 0, 0, 0])
    dout = np.zeros_like(y)
    dout[0, 0, 0, 0] = 1
    dx = layer.backward(dout)
    assert dx[0, 0, 0, 1] == 1 and dx.sum() == 1


def test_maxpool_propagates_nan_anywhere_in_the_window():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan     # last element of the first 2x2 window
    x[0, 0, 2, 3] = np.nan     # second row of the last window
    y = L.MaxPool2D(2).forward(x)
    np.testing.assert_array_equal(np.isnan(y[0, 0]), [[True, False], [False, True]])
    np.testing.assert_array_equal(y[0, 0, [0, 1], [1, 0]], [7, 13])


def test_maxpool_nan_stays_in_bounds():
    x = np.full((1, 1, 4, 4), np.nan, np.float32)
    layer = L.MaxPool2D(2)
    assert np.isnan(layer.forward(x)).all()
    dx = layer.backward(np.ones((1, 1, 2, 2), np.float32))
    assert dx.sum() == 4


@pytest.mark.parametrize("shape,k,s", [((1, 1, 1, 1), 1, 1), ((1, 2, 5, 5), 3, 2), ((2, 1, 4, 6), 2, 3)])
def test_pool_edge_cases(shape, k, s):
    x = _distinct(shape, np.random.default_rng(2), np.float64)
    np.testing.assert_array_equal(L.MaxPool2D(k, s).forward(x), ref.maxpool2d_forward(x, k, k, s, s))
    np.testing.assert_allclose(L.AvgPool2D(k, s).forward(x), ref.avgpool2d_forward(x, k, k, s, s))


@pytest.mark.parametrize("shape", [(1, 2, 6, 6), (5, 3, 7, 6)])
def test_backward_kernels_overwrite_dx(shape):
    """dx comes from np.empty: every pixel, covered by a window or not, must be written."""
    from cdl import kernels as K
    rng = np.random.default_rng(3)
    x = _distinct(shape, rng, np.float64)
    k, s = (2, 3), (3, 3)  # windows skip pixels: those must end up 0, not garbage
    oh, ow = (shape[2] - k[0]) // s[0] + 1, (shape[3] - k[1]) // s[1] + 1
    y = np.empty((*shape[:2], oh, ow))
    K.maxpool2d_forward(x, *k, *s, 0, 0, y)
    dout = rng.standard_normal(y.shape)
    dx = np.full(shape, np.nan)
    K.maxpool2d_backward(dout, x, y, *k, *s, 0, 0, dx)
    np.testing.assert_allclose(dx, ref.maxpool2d_backward(dout, x, *k, *s), atol=1e-12)
    dx = np.full(shape, np.nan)
    K.avgpool2d_backward(dout, *k, *s, 0, 0, dx)
    np.testing.assert_allclose(dx, ref.avgpool2d_backward(dout, shape, *k, *s), atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 2, 7, 9), (3, 1, 2, 2), (2, 2, 5, 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_2x2_fast_path_matches_the_general_kernels(shape, dtype):
    """2x2 stride 2 without padding has its own kernels: same y, same dx, dx fully written
    (odd H or W leave a row or column no window covers)."""
    from cdl.kernels import pool as kp
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 3, shape).astype(dtype)  # many ties: the first one must win
    x.flat[::5] = np.nan
    oh, ow = shape[2] // 2, shape[3] // 2
    y1, y2 = np.empty((*shape[:2], oh, ow), dtype), np.empty((*shape[:2], oh, ow), dtype)
    kp._maxpool_forward(x, 2, 2, 2, 2, 0, 0, y1, 0, shape[0])
    kp.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, y2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(y2, ref.maxpool2d_forward(x, 2, 2, 2, 2))
    dout = rng.standard_normal(y1.shape).astype(dtype)
    dout.flat[::7] = np.inf  # reaches the winner only, exactly as a finite value does
    dx1, dx2 = np.full(shape, np.nan, dtype), np.full(shape, np.nan, dtype)
    kp._maxpool_backward(dout, x, y1, 2, 2, 2, 2, 0, 0, dx1, 0, shape[0])
    kp.maxpool2d_backward(dout, x, y2, 2, 2, 2, 2, 0, 0, dx2)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(dx2, ref.maxpool2d_backward(dout, x, 2, 2, 2, 2))


@settings(max_examples=40, deadline=None)
@given(pool_cases(), st.sampled_from([np.float32, np.float64]))
def test_maxpool_fast_and_exact_plane_paths_agree(case, dtype):
    """Planes without NaN (and, backward, with finite dout) take the branch-free loops; the
    others the per-window scan. On tied planes both must give the same y and dx."""
    from cdl.kernels import pool as kp
    shape, (kh, kw), (sh, sw), (ph, pw) = case
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, shape[2:]).astype(dtype)
    oh = (shape[2] + 2 * ph - kh) // sh + 1
    ow = (shape[3] + 2 * pw - kw) // sw + 1
    lo, hi = kp._col_ranges(kw, sw, pw, shape[3], ow)
    y1, y2 = np.empty((oh, ow), dtype), np.empty((oh, ow), dtype)
    kp._forward_plane_fast(x, kh, sh, sw, ph, pw, y1, lo, hi)
    kp._forward_plane_exact(x, kh, kw, sh, sw, ph, pw, y2)
    np.testing.assert_array_equal(y1, y2)
    g = rng.integers(-3, 4, (oh, ow)).astype(dtype)
    dx1, dx2 = np.full(x.shape, np.nan, dtype), np.full(x.shape, np.nan, dtype)
    kp._backward_plane_fast(g, x, y1, kh, sh, sw, ph, pw, dx1, np.empty(ow, dtype), lo, hi)
    kp._backward_plane_exact(g, x, kh, kw, sh, sw, ph, pw, dx2)
    np.testing.assert_array_equal(dx1, dx2)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avgpool_kernels(shape, dtype):
    """Plane means, and dout / (H*W) on every pixel (dx overwritten); the outputs returned."""
    from cdl import kernels as K
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(dtype)
    y = np.full(shape[:2], np.nan, dtype)
    assert K.global_avgpool2d_forward(x, y) is y
    np.testing.assert_allclose(y, x.mean(axis=(2, 3)), rtol=1e-6)
    dout = rng.standard_normal(shape[:2]).astype(dtype)
    dx = np.full(shape, np.nan, dtype)
    assert K.global_avgpool2d_backward(dout, dx) is dx
    want = np.broadcast_to((dout / (shape[2] * shape[3]))[:, :, None, None], shape)
    np.testing.assert_allclose(dx, want, rtol=1e-6)
