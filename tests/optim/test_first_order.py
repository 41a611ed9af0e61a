"""SGD and Adam against their textbook formulas over 20 steps (float64)."""
import numpy as np
import pytest

from cdl import optim


def _run(opt, steps=20, shape=(7, 3), seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal(shape).astype(dtype), "b": rng.standard_normal(5).astype(dtype)}
    start = {k: v.copy() for k, v in params.items()}
    grads_seq = [{k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
                 for _ in range(steps)]
    for g in grads_seq:
        opt.update(params, g)
    return start, grads_seq, params


def test_sgd_formula():
    start, gs, got = _run(optim.SGD(lr=0.1))
    for k in start:
        want = start[k] - 0.1 * sum(g[k] for g in gs)
        np.testing.assert_allclose(got[k], want, rtol=1e-12)


def test_adam_formula():
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-6
    start, gs, got = _run(optim.Adam(lr=lr, beta1=b1, beta2=b2, eps=eps))
    for k in start:
        p, m, v = start[k].copy(), 0, 0
        for t, g in enumerate(gs, 1):
            m = b1 * m + (1 - b1) * g[k]
            v = b2 * v + (1 - b2) * g[k] ** 2
            p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(got[k], p, rtol=1e-10)


@pytest.mark.parametrize("make", [lambda: optim.SGD(lr=0.1), lambda: optim.Adam(lr=0.1)])
def test_large_arrays_take_the_parallel_path_and_agree(make):
    small = _run(make(), steps=3, shape=(4, 4), dtype=np.float32)[2]["w"]
    big = _run(make(), steps=3, shape=(300, 300), dtype=np.float32)[2]["w"]
    assert big.dtype == np.float32 and small.dtype == np.float32
    ref = _run(make(), steps=3, shape=(300, 300), dtype=np.float64)[2]["w"]
    np.testing.assert_allclose(big, ref, rtol=1e-4, atol=1e-5)


def test_convex_quadratic_converges():
    A = np.diag([1.0, 10.0])
    for opt in (optim.SGD(lr=0.05), optim.Adam(lr=0.1)):
        p = {"x": np.array([3.0, -2.0])}
        for _ in range(500):
            opt.update(p, {"x": A @ p["x"]})
        assert np.linalg.norm(p["x"]) < 1e-2, type(opt).__name__


@pytest.mark.parametrize("make, match", [
    (lambda: optim.SGD(lr=0), "lr"),
    (lambda: optim.SGD(lr=-1), "lr"),
    (lambda: optim.Adam(beta1=1.0), "beta1"),
    (lambda: optim.Adam(beta2=-0.1), "beta2"),
    (lambda: optim.Adam(eps=0), "eps"),
    (lambda: optim.Adam(lr="fast"), "lr"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_mismatched_params_and_grads():
    opt = optim.SGD()
    with pytest.raises(ValueError, match="keys differ"):
        opt.update({"a": np.zeros(3)}, {"b": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        opt.update({"a": np.zeros(3)}, {"a": np.zeros(4)})
