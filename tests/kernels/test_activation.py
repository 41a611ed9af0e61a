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
