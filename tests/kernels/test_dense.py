"""cdl.kernels.dense against NumPy: affine forward and backward, sliced over threads."""
import numpy as np
import pytest

from cdl.kernels import dense


@pytest.mark.parametrize("N,D,O", [(1, 1, 1), (1, 300, 7), (5, 3, 2), (31, 17, 9), (33, 64, 1),
                                   (100, 1024, 50), (257, 5, 130)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_affine_matches_numpy(N, D, O, dtype, bias):
    rng = np.random.default_rng(N * 1000 + D * 10 + O)
    x = rng.standard_normal((N, D)).astype(dtype)
    W = rng.standard_normal((D, O)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    dout = rng.standard_normal((N, O)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)

    y = dense.affine_forward(x, W, b, np.empty((N, O), dtype))
    want = x.astype(np.float64) @ W + (0 if b is None else b)
    np.testing.assert_allclose(y, want, **tol)

    dx, dW, db = (np.empty((N, D), dtype), np.empty((D, O), dtype),
                  np.empty(O, dtype) if bias else None)
    dense.affine_backward(dout, x, W, dx, dW, db)
    np.testing.assert_allclose(dx, dout.astype(np.float64) @ W.T, **tol)
    np.testing.assert_allclose(dW, x.T.astype(np.float64) @ dout, **tol)
    if bias:
        np.testing.assert_allclose(db, dout.astype(np.float64).sum(0), **tol)


def test_affine_backward_without_dx_fills_only_the_weights():
    rng = np.random.default_rng(0)
    x, W, dout = (rng.standard_normal(s).astype(np.float32) for s in ((64, 40), (40, 8), (64, 8)))
    dW = np.empty((40, 8), np.float32)
    dx, _, db = dense.affine_backward(dout, x, W, None, dW, None)
    assert dx is None and db is None
    np.testing.assert_allclose(dW, x.T @ dout, rtol=1e-5, atol=1e-4)
