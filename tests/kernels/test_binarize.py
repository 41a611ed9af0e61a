"""CPU kernels of cdl.kernels.binarize against their NumPy formulas."""
import numpy as np
import pytest

from cdl.kernels import binarize as K


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sign_and_ste(dtype):
    x = np.array([[-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 1.5, np.nan]], dtype)
    d = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.inf, 8.0]], dtype)
    np.testing.assert_array_equal(K.sign_forward(x, np.empty_like(x)),
                                  [[-1, -1, 1, 1, 1, 1, 1, -1]])
    # blocked: 0, as dout * 0 gives (NaN for a non-finite dout: inf * 0)
    np.testing.assert_array_equal(K.ste_backward(d, x, np.empty_like(d)),
                                  [[0, 2, 3, 4, 5, 6, np.nan, 0]])
    d2 = d.copy()
    assert K.ste_backward(d2, x, d2) is d2  # in place
    np.testing.assert_array_equal(d2, K.ste_backward(d, x, np.empty_like(d)))
    # a NaN dout that passes stays NaN, as dout * 1 would
    assert np.isnan(K.ste_backward(np.array([np.nan]), np.array([0.5]), np.empty(1))[0])


def test_sign_into_another_dtype_and_large_arrays():
    x = np.random.default_rng(0).standard_normal(100_003).astype(np.float32)
    y = K.sign_forward(x, np.empty(x.shape, np.float64))
    np.testing.assert_array_equal(y, np.where(x >= 0, 1.0, -1.0))


def test_clip_in_place():
    w = np.array([-3.0, -1.0, 0.2, 1.0, 4.0, np.nan])
    assert K.clip(w, -1.0, 1.0, w) is w
    np.testing.assert_array_equal(w, [-1, -1, 0.2, 1, 1, np.nan])


def test_stochastic_sign_follows_the_hard_sigmoid():
    values = np.array([-1.5, -0.5, 0.0, 0.6, 1.0])
    x = np.tile(values, (20000, 1))
    y = K.stochastic_sign_forward(x, np.random.default_rng(1), np.empty_like(x))
    assert set(np.unique(y)) <= {-1.0, 1.0}
    np.testing.assert_allclose((y == 1).mean(axis=0), np.clip((values + 1) / 2, 0, 1),
                               atol=5 * np.sqrt(0.25 / 20000))


@pytest.mark.parametrize("shape", [(5, 3, 1), (2, 3, 4), (1, 4, 7)])
def test_channel_kernels(shape):
    rng = np.random.default_rng(2)
    F = shape[1]
    x, z = rng.standard_normal(shape), rng.standard_normal(shape)
    alpha, b = rng.uniform(0.1, 1, F), rng.standard_normal(F)
    c = (None, slice(None), None)
    np.testing.assert_allclose(K.channel_scale_shift(x, alpha, b, np.empty_like(x)),
                               x * alpha[c] + b[c], rtol=1e-15)
    np.testing.assert_allclose(K.channel_scale_shift(x, None, b, np.empty_like(x)), x + b[c])
    np.testing.assert_allclose(K.channel_scale_shift(x, alpha, None, np.empty_like(x)),
                               x * alpha[c])
    y = x.copy()
    assert K.channel_scale_shift(y, None, None, y) is y
    np.testing.assert_allclose(K.channel_sum(x, np.empty(F)), x.sum(axis=(0, 2)))
    np.testing.assert_allclose(K.channel_dot(x, z, np.empty(F)), (x * z).sum(axis=(0, 2)))
    np.testing.assert_allclose(K.channel_abs_mean(x, np.empty(F)), np.abs(x).mean(axis=(0, 2)))
    w = x.copy()
    w.reshape(-1)[0] = 0.0
    dw = z.copy()
    K.channel_abs_mean_backward(b, w, dw)
    np.testing.assert_allclose(dw, z + b[c] * np.sign(w) / (w.size // F))


def test_abs_mean_backward_is_the_gradient_of_abs_mean():
    """Central differences of sum(dalpha * channel_abs_mean(w)) away from w = 0."""
    rng = np.random.default_rng(3)
    w = rng.uniform(0.1, 1, (2, 3, 4)) * rng.choice([-1, 1], (2, 3, 4))
    dalpha = rng.standard_normal(3)
    grad = K.channel_abs_mean_backward(dalpha, w, np.zeros_like(w))
    h, num = 1e-6, np.empty_like(w)
    for i in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[i] += h
        wm[i] -= h
        num[i] = (dalpha @ K.channel_abs_mean(wp, np.empty(3))
                  - dalpha @ K.channel_abs_mean(wm, np.empty(3))) / (2 * h)
    np.testing.assert_allclose(grad, num, atol=1e-8)
