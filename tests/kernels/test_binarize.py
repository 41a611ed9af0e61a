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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 3, 1), (1, 4, 7), (2, 3, 4), (300, 200, 1), (1, 200, 300)])
@pytest.mark.parametrize("in_place", [True, False])
@pytest.mark.parametrize("scale", [True, False])
def test_clip_sign_forward_is_clip_then_sign_then_abs_mean(dtype, shape, in_place, scale):
    """The fused weight pass against the three kernels it replaces (NaN, +-0, +-1 and
    values past them included); the large shapes run on the worker threads."""
    rng = np.random.default_rng(4)
    w = rng.uniform(-2, 2, shape).astype(dtype)
    w.reshape(-1)[:6] = [np.nan, 0.0, -0.0, 1.0, -1.0, -1.5]
    clipped = np.clip(w, -1, 1)
    out = w if in_place else np.full_like(w, 7.0)
    y = np.full_like(w, 7.0)
    alpha = np.full(shape[1], 7.0, dtype) if scale else None
    assert K.clip_sign_forward(w, -1.0, 1.0, out, y, alpha) is y
    np.testing.assert_array_equal(out, clipped)
    np.testing.assert_array_equal(y, np.where(clipped >= 0, 1, -1))
    if in_place:
        assert out is w
    else:  # w itself untouched
        assert np.isnan(w.reshape(-1)[0]) and (np.abs(w) > 1).any()
    if scale:
        want = np.abs(clipped).mean(axis=(0, 2))
        np.testing.assert_allclose(alpha, want, rtol=1e-6 if dtype == np.float64 else 1e-5)
        assert np.isnan(alpha[0]) and not np.isnan(alpha[1:]).any()


@pytest.mark.parametrize("shape", [(300, 200, 1), (1, 200, 300)])
def test_abs_mean_backward_on_worker_threads(shape):
    """The Numba backward on arrays split across threads, against its NumPy formula."""
    rng = np.random.default_rng(5)
    w, dw = rng.standard_normal(shape), rng.standard_normal(shape)
    w.reshape(-1)[:2] = [0.0, np.nan]
    dalpha = rng.standard_normal(shape[1])
    want = dw + dalpha[None, :, None] * np.sign(w) / (w.size // shape[1])
    K.channel_abs_mean_backward(dalpha, w, dw)
    np.testing.assert_allclose(dw, want, rtol=1e-12, atol=1e-15)
