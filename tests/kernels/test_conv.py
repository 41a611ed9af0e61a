"""Conv kernels against the direct NumPy reference on random geometries."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl import kernels as K
from cdl.kernels import reference as ref


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 10))
    W = draw(st.integers(max(1, kw - 2 * pw), 10))
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    return (N, C, H, W), (F, C, kh, kw), (sh, sw), (ph, pw)


def _run(case, dtype, seed=0):
    xs, ws, stride, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    W = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = K.conv2d_forward(x, W, b, stride, pad)
    want = ref.conv2d_forward(x, W, b, *stride, *pad)
    dout = rng.standard_normal(want.shape).astype(dtype)
    dx, dW, db = K.conv2d_backward(dout, x, W, stride, pad, True)
    rdx, rdW, rdb = ref.conv2d_backward(dout, x, W, *stride, *pad)
    return (y, want), (dx, rdx), (dW, rdW), (db, rdb)


@settings(max_examples=50, deadline=None)
@given(conv_cases(), st.sampled_from([np.float32, np.float64]))
def test_conv_matches_reference(case, dtype):
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for got, want in _run(case, dtype):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("case", [
    ((1, 1, 6, 6), (4, 1, 1, 1), (1, 1), (0, 0)),   # 1x1 kernel, batch 1
    ((2, 3, 7, 7), (2, 3, 2, 2), (3, 3), (0, 0)),   # stride > kernel
    ((2, 2, 5, 5), (3, 2, 3, 3), (1, 1), (1, 1)),   # same padding
    ((1, 1, 3, 3), (2, 1, 5, 5), (1, 1), (1, 1)),   # kernel bigger than the image
    ((3, 5, 9, 7), (6, 5, 3, 2), (2, 1), (1, 0)),   # odd, rectangular
    ((2, 16, 4, 4), (8, 16, 1, 1), (1, 1), (0, 0)),  # pointwise
])
def test_conv_edge_cases(case):
    for got, want in _run(case, np.float64):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
