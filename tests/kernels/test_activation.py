"""ReLU kernels against NumPy's x * (x > 0) and dout * (x > 0), NaN and Inf included."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl import kernels as K
from cdl import layers as L
from cdl.kernels.parallel import PARALLEL_MIN


def _data(size, rng, dtype):
    x = rng.standard_normal(size).astype(dtype)
    x[rng.random(size) < 0.05] = 0
    special = rng.choice(size, min(size, 6), replace=False)
    x[special] = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40])[:special.size]
    return x


@pytest.mark.slow  # 40 examples, some past PARALLEL_MIN elements
@settings(max_examples=40, deadline=None)
@given(st.sampled_from([1, 2, 7, 64, 1000, PARALLEL_MIN + 13]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_relu_kernels_match_numpy(size, dtype, seed):
    rng = np.random.default_rng(seed)
    x, dout = _data(size, rng, dtype), _data(size, rng, dtype)
    y = K.relu_forward(x, np.empty_like(x))
    dx = K.relu_backward(dout, y, np.empty_like(dout))
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, on purpose
        np.testing.assert_array_equal(y, x * (x > 0))
        np.testing.assert_array_equal(dx, dout * (x > 0))


@pytest.mark.parametrize("shape", [(1, 1), (3, 4, 5, 6), (2, 70000)])
def test_relu_layer_keeps_shape_and_dtype(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layer = L.ReLU()
    y = layer.forward(x)
    assert y.shape == x.shape and y.dtype == np.float32
    dx = layer.backward(np.ones(shape))  # float64 dout: computed in the layer's dtype
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, (x > 0).astype(np.float32))


# The other activations against plain NumPy formulas.

def _ref_softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("size", [1, 7, 1000, PARALLEL_MIN + 13])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_activation_kernels_match_numpy(size, dtype):
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 3).astype(dtype)
    x[0] = 0
    d = rng.standard_normal(size).astype(dtype)
    single = dtype == np.float32
    tol = dict(rtol=1e-6 if single else 1e-13, atol=1e-7 if single else 1e-15)
    a = 0.1
    np.testing.assert_array_equal(K.leaky_relu_forward(x, a, np.empty_like(x)),
                                  np.where(x > 0, x, x * dtype(a)))
    np.testing.assert_array_equal(K.leaky_relu_backward(d, x, a, np.empty_like(x)),
                                  np.where(x > 0, d, d * dtype(a)))
    y = K.sigmoid_forward(x, np.empty_like(x))
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x.astype(np.float64))), **tol)
    np.testing.assert_allclose(K.sigmoid_backward(d, y, np.empty_like(x)), d * y * (1 - y), **tol)
    y = K.tanh_forward(x, np.empty_like(x))
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64)), **tol)
    np.testing.assert_allclose(K.tanh_backward(d, y, np.empty_like(x)), d * (1 - y * y), **tol)
    np.testing.assert_array_equal(K.step_forward(x, np.empty_like(x)), (x > 0).astype(dtype))
    np.testing.assert_array_equal(K.step_backward(d, np.full_like(d, 7)), np.zeros_like(d))


def test_sigmoid_and_step_extremes():
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4, np.nan], dtype=np.float32)
    y = K.sigmoid_forward(x, np.empty_like(x))
    np.testing.assert_array_equal(y[:5], [0, 0, 0.5, 1, 1])
    assert np.isnan(y[5])
    np.testing.assert_array_equal(K.step_forward(x, np.empty_like(x)), [0, 0, 0, 1, 1, 0])


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (7, 10), (300, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_kernels_match_numpy(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    d = rng.standard_normal(shape).astype(dtype)
    y = K.softmax_forward(x, np.empty_like(x))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, _ref_softmax(x), rtol=tol, atol=tol)
    y64 = _ref_softmax(x)
    want = y64 * (d - (d * y64).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(K.softmax_backward(d, y, np.empty_like(x)), want,
                               rtol=1e-5, atol=tol * 10)


def test_softmax_is_stable_for_huge_scores():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e30, 1e30, -1e30]], dtype=np.float32)
    y = K.softmax_forward(x, np.empty_like(x))
    np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], rtol=1e-7)


def test_softmax_helper_any_axis_count():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    y = L.activation.softmax(x)
    np.testing.assert_allclose(y, _ref_softmax(x.reshape(6, 4)).reshape(x.shape), rtol=1e-13)
    np.testing.assert_allclose(L.activation.softmax([[0, 0]]), [[0.5, 0.5]])
