"""Loss kernels against plain NumPy formulas (float64 references)."""
import numpy as np
import pytest

from cdl import kernels as K


def _log_softmax(y):
    y = y.astype(np.float64)
    z = y - y.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


SHAPES = [(1, 1), (1, 4), (5, 1), (7, 10), (64, 3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("soft", [False, True])
def test_softmax_cross_entropy_matches_numpy(shape, dtype, soft):
    rng = np.random.default_rng(sum(shape))
    N, C = shape
    y = (rng.standard_normal(shape) * 3).astype(dtype)
    labels = rng.integers(0, C, N)
    t = rng.dirichlet(np.ones(C), N).astype(dtype) if soft else labels
    onehot = t if soft else np.eye(C)[labels]
    log_p = _log_softmax(y)
    probs = np.empty_like(y)
    loss = K.softmax_cross_entropy_forward(y, t, probs)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, -(onehot * log_p).sum() / N, **_tol(dtype))
    np.testing.assert_allclose(probs, np.exp(log_p), **_tol(dtype))
    dx = K.softmax_cross_entropy_backward(probs, t, np.empty_like(y))
    np.testing.assert_allclose(dx, (np.exp(log_p) - onehot) / N, **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_huge_scores(dtype):
    y = np.array([[1e4, -1e4, 0], [-1e4, 1e4, 0], [1e4, 1e4, -1e4]], dtype=dtype)
    probs = np.empty_like(y)
    loss = K.softmax_cross_entropy_forward(y, np.array([0, 0, 1]), probs)
    # rows: exact 0, 2e4, log 2
    np.testing.assert_allclose(loss, (0 + 2e4 + np.log(2)) / 3, rtol=1e-6)
    np.testing.assert_allclose(probs, [[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0]], rtol=1e-6)


@pytest.mark.parametrize("shape", [(1,), (6,), (1, 1), (4, 3), (2, 3, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_cross_entropy_matches_numpy(shape, dtype):
    rng = np.random.default_rng(len(shape))
    y = (rng.standard_normal(shape) * 3).astype(dtype)
    t = (rng.random(shape) < 0.5).astype(dtype)
    t.flat[0] = 0.3  # a probability
    y64, N = y.astype(np.float64), shape[0]
    p = 1 / (1 + np.exp(-y64))
    want = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum() / N
    probs = np.empty_like(y)
    np.testing.assert_allclose(K.sigmoid_cross_entropy_forward(y, t, probs), want, **_tol(dtype))
    np.testing.assert_allclose(probs, p, **_tol(dtype))
    dx = K.sigmoid_cross_entropy_backward(probs, t, np.empty_like(y))
    np.testing.assert_allclose(dx, (p - t) / N, **_tol(dtype))


def test_sigmoid_cross_entropy_huge_scores():
    y = np.array([[1e4, -1e4, 1e4, -1e4, 0.0]])
    t = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]])
    probs = np.empty_like(y)
    loss = K.sigmoid_cross_entropy_forward(y, t, probs)
    np.testing.assert_allclose(loss, 2e4 + np.log(2))
    np.testing.assert_array_equal(probs, [[1, 0, 1, 0, 0.5]])


@pytest.mark.parametrize("shape", [(1,), (1, 1), (5, 3), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_squared_error_matches_numpy(shape, dtype):
    rng = np.random.default_rng(len(shape))
    y, t = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    d = y.astype(np.float64) - t
    np.testing.assert_allclose(K.mean_squared_error_forward(y, t),
                               0.5 * (d * d).sum() / shape[0], **_tol(dtype))
    np.testing.assert_allclose(K.mean_squared_error_backward(y, t, np.empty_like(y)),
                               d / shape[0], **_tol(dtype))
