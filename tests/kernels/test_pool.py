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


def test_maxpool_padding_never_wins():
    x = -np.ones((1, 1, 2, 2), np.float32) * 5
    y = L.MaxPool2D(2, stride=1, pad=1).forward(x)
    assert (y == -5).all()


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
    y, arg = np.empty((*shape[:2], oh, ow)), np.empty((*shape[:2], oh, ow), np.int32)
    K.maxpool2d_forward(x, *k, *s, 0, 0, y, arg)
    dout = rng.standard_normal(y.shape)
    dx = np.full(shape, np.nan)
    K.maxpool2d_backward(dout, arg, dx)
    np.testing.assert_allclose(dx, ref.maxpool2d_backward(dout, x, *k, *s), atol=1e-12)
    dx = np.full(shape, np.nan)
    K.avgpool2d_backward(dout, *k, *s, 0, 0, dx)
    np.testing.assert_allclose(dx, ref.avgpool2d_backward(dout, shape, *k, *s), atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 2, 7, 9), (3, 1, 2, 2), (2, 2, 5, 6)])
def test_maxpool_2x2_fast_path_matches_the_general_kernel(shape):
    """2x2 stride 2 without padding has its own unrolled kernel: same values, same argmax."""
    from cdl.kernels import pool as kp
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 3, shape).astype(np.float32)  # many ties: the first one must win
    x.flat[::5] = np.nan
    oh, ow = shape[2] // 2, shape[3] // 2
    y1, y2 = np.empty((*shape[:2], oh, ow), np.float32), np.empty((*shape[:2], oh, ow), np.float32)
    a1, a2 = np.empty(y1.shape, np.int32), np.empty(y1.shape, np.int32)
    kp._maxpool_forward(x, 2, 2, 2, 2, 0, 0, y1, a1, 0, shape[0])
    kp.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, y2, a2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(a1, a2)
    finite = ~np.isnan(x)
    xf = np.where(finite, x, -np.inf)  # the reference on the windows without NaN
    want = ref.maxpool2d_forward(xf, 2, 2, 2, 2)
    ok = ~np.isnan(y2)
    np.testing.assert_array_equal(y2[ok], want[ok])
