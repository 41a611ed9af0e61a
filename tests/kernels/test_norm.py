"""BatchNorm kernels (through the layer's allocation) against the book's NumPy formulas."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl import layers as L
from cdl.kernels import reference as ref


@st.composite
def bn_shapes(draw):
    if draw(st.booleans()):
        return (draw(st.integers(2, 9)), draw(st.integers(1, 300)))
    return (draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 7)),
            draw(st.integers(2, 9)))


def _layer_with_affine(C, rng, dtype):
    bn = L.BatchNorm(C, dtype=dtype)
    bn.params["gamma"][:] = rng.uniform(0.5, 2.0, C)
    bn.params["beta"][:] = rng.standard_normal(C)
    return bn


@settings(max_examples=80, deadline=None)
@given(bn_shapes(), st.sampled_from([np.float32, np.float64]), st.floats(-50, 50),
       st.floats(0.01, 20))
def test_training_forward_backward_match_reference(shape, dtype, shift, scale):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * scale + shift).astype(dtype)
    bn = _layer_with_affine(shape[1], rng, dtype)
    y = bn.forward(x, train=True)
    assert y.dtype == dtype and y.shape == shape
    g64, b64 = bn.params["gamma"].astype(np.float64), bn.params["beta"].astype(np.float64)
    want, xc, xn, std, mean, var = ref.batchnorm_forward(x.astype(np.float64), g64, b64, bn.eps)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(y, want, **tol)
    dout = rng.standard_normal(shape).astype(dtype)
    keep = dout.copy()
    dx = bn.backward(dout)
    np.testing.assert_array_equal(dout, keep)
    dx_want, dg_want, db_want = ref.batchnorm_backward(dout.astype(np.float64), g64, xc, xn, std)
    assert dx.dtype == dtype
    # dx is a difference of O(|dout|) terms: absolute tolerance scaled by gamma / std
    dx_tol = np.abs(g64 / std.reshape(-1)).max() * (1e-4 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(dx, dx_want, rtol=tol["rtol"], atol=dx_tol)
    np.testing.assert_allclose(bn.grads["gamma"], dg_want, rtol=1e-4, atol=1e-3 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(bn.grads["beta"], db_want, rtol=1e-4, atol=1e-3 if dtype == np.float32 else 1e-9)


@settings(max_examples=40, deadline=None)
@given(bn_shapes(), st.sampled_from([np.float32, np.float64]))
def test_inference_forward_uses_running_statistics(shape, dtype):
    rng = np.random.default_rng(1)
    C = shape[1]
    bn = _layer_with_affine(C, rng, dtype)
    bn.running_mean = rng.standard_normal(C)
    bn.running_var = rng.uniform(0.1, 3.0, C)
    x = rng.standard_normal(shape).astype(dtype)
    y = bn.forward(x, train=False)
    s = (1, C) + (1,) * (len(shape) - 2)
    want = (bn.params["gamma"].astype(np.float64).reshape(s)
            * (x - bn.running_mean.astype(np.float64).reshape(s))
            / np.sqrt(bn.running_var.astype(np.float64).reshape(s) + bn.eps)
            + bn.params["beta"].astype(np.float64).reshape(s))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_mean_small_spread_keeps_precision(dtype):
    """Shifted sums: |mean| >> std must not cancel the variance away."""
    rng = np.random.default_rng(2)
    x = (1000.0 + 0.01 * rng.standard_normal((64, 3, 4, 4))).astype(dtype)
    y = L.BatchNorm(3).astype(dtype).forward(x)
    want = ref.batchnorm_forward(x.astype(np.float64), np.ones(3), np.zeros(3), 1e-5)[0]
    np.testing.assert_allclose(y, want, atol=2e-2 if dtype == np.float32 else 1e-8)
    assert np.allclose(y.std(axis=(0, 2, 3)), 1.0, atol=0.05)


def test_constant_channel_gives_beta_and_finite_gradients():
    x = np.ones((4, 2, 3, 3), np.float32)
    bn = L.BatchNorm(2)
    bn.params["beta"][:] = [0.5, -1.0]
    y = bn.forward(x)
    np.testing.assert_allclose(y[:, 0], 0.5)
    np.testing.assert_allclose(y[:, 1], -1.0)
    dx = bn.backward(np.ones_like(y))
    assert np.isfinite(dx).all()


def test_nan_propagates_instead_of_vanishing():
    x = np.random.default_rng(3).standard_normal((4, 2, 3, 3)).astype(np.float32)
    x[1, 0, 2, 2] = np.nan
    y = L.BatchNorm(2).forward(x)
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1]).all()


@pytest.mark.parametrize("shape", [(8, 16, 16, 16), (64, 600), (2, 3, 75, 80)])
def test_batches_split_over_threads_match_reference(shape):
    """Shapes above PARALLEL_MIN run on cdl's worker pool, in channel or feature-block slices."""
    from cdl.kernels.parallel import PARALLEL_MIN
    assert np.prod(shape) >= PARALLEL_MIN
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    bn = _layer_with_affine(shape[1], rng, np.float32)
    y = bn.forward(x)
    g64, b64 = bn.params["gamma"].astype(np.float64), bn.params["beta"].astype(np.float64)
    want, xc, xn, std, _, _ = ref.batchnorm_forward(x.astype(np.float64), g64, b64, bn.eps)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    dout = rng.standard_normal(shape).astype(np.float32)
    dx = bn.backward(dout)
    dx_want, dg_want, _ = ref.batchnorm_backward(dout.astype(np.float64), g64, xc, xn, std)
    np.testing.assert_allclose(dx, dx_want, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.grads["gamma"], dg_want, rtol=1e-4, atol=1e-2)
    s = (1, -1) + (1,) * (len(shape) - 2)
    rm, rv = bn.running_mean.astype(np.float64).reshape(s), bn.running_var.astype(np.float64).reshape(s)
    np.testing.assert_allclose(bn.forward(x, train=False),
                               g64.reshape(s) * (x - rm) / np.sqrt(rv + bn.eps) + b64.reshape(s),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inv_std_and_running_update(dtype):
    from cdl import kernels as K
    rng = np.random.default_rng(2)
    var = rng.uniform(0.1, 2.0, 5).astype(dtype)
    inv = K.batchnorm_inv_std(var, 1e-3, np.empty(5))
    np.testing.assert_allclose(inv, 1 / np.sqrt(var.astype(np.float64) + 1e-3), rtol=1e-15)
    mean, bvar = rng.standard_normal(5), rng.uniform(0.1, 2.0, 5)
    rm, rv = rng.standard_normal(5).astype(dtype), rng.uniform(0.5, 1.5, 5).astype(dtype)
    want_m, want_v = 0.8 * rm + 0.2 * mean, 0.8 * rv + 0.2 * bvar * 1.25
    assert K.batchnorm_running_update(mean, bvar, 0.8, 1.25, rm, rv) == (rm, rv)
    assert rm.dtype == dtype and rv.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(rm, want_m, rtol=tol, atol=tol)
    np.testing.assert_allclose(rv, want_v, rtol=tol)
