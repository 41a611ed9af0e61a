"""Full-batch optimizers against scipy.optimize: same minimum, comparable iteration counts."""
import math

import numpy as np
import pytest

from cdl import Sequential, optim
from cdl import layers as L

so = pytest.importorskip("scipy.optimize")


def rosen(x):
    return so.rosen(x), so.rosen_der(x)


# cdl optimizer -> the scipy method it is measured against
PAIRS = [
    (lambda: optim.Newton(gtol=1e-6), "Newton-CG"),
    (lambda: optim.ConjugateGradient(gtol=1e-6), "CG"),
    (lambda: optim.BFGS(gtol=1e-6), "BFGS"),
    (lambda: optim.LBFGS(gtol=1e-6), "L-BFGS-B"),
]


def _scipy(fun, x0, method, hess=None):
    opts = {"gtol": 1e-6} if method != "Newton-CG" else {"xtol": 1e-10}
    if method == "L-BFGS-B":
        opts = {"gtol": 1e-6, "ftol": 1e-15}
    return so.minimize(fun, x0, jac=True, method=method, hess=hess, options=opts)


@pytest.mark.parametrize("make, method", PAIRS, ids=[m for _, m in PAIRS])
@pytest.mark.parametrize("x0", [[-1.2, 1.0], [-1.2, 1.0, 0.5, 0.3, 2.0]], ids=["2d", "5d"])
def test_rosenbrock_like_scipy(make, method, x0):
    x0 = np.array(x0)
    opt = make()
    got = opt.minimize(rosen, x0)
    ref = _scipy(rosen, x0, method, hess=so.rosen_hess if method == "Newton-CG" else None)
    assert got.converged, got
    np.testing.assert_allclose(got.x, ref.x, atol=1e-4)
    assert got.fun <= ref.fun + 1e-9
    assert np.abs(got.grad).max() <= 1e-6
    assert got.nit <= 1.5 * ref.nit + 5, (got.nit, ref.nit)
    assert len(got.history) == got.nit + 1 and got.history[-1] == got.fun


def _logistic_net(seed=0):
    """Softmax regression (one Affine layer) on overlapping classes, L2 on W and b so the
    minimum is unique (softmax alone is blind to a shift of all the biases)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((60, 4))
    t = (x[:, 0] + 0.5 * x[:, 1] + 0.8 * rng.standard_normal(60) > 0).astype(int) + \
        (x[:, 2] > 0.7)
    net = Sequential([L.Affine(4, 3, rng=seed)], loss=L.SoftmaxCrossEntropy(),
                     weight_decay=optim.WeightDecay(l2=0.05, names=("W", "b")))
    return net.astype(np.float64), x, t


@pytest.mark.parametrize("make, method", PAIRS + [
    (lambda: optim.CoordinateDescent(gtol=1e-6, max_iter=2000), "BFGS")],
    ids=[m for _, m in PAIRS] + ["CoordinateDescent"])
def test_logistic_regression_network_like_scipy(make, method):
    net, x, t = _logistic_net()
    fun, theta0 = optim.model_closure(net, x, t)
    ref = _scipy(fun, theta0.copy(), method,
                 hess=(lambda th: _fd_hessian(fun, th)) if method == "Newton-CG" else None)
    opt = make()
    got = opt.fit(net, x, t)
    assert got.converged, got
    np.testing.assert_allclose(got.x, ref.x, atol=1e-5)
    assert got.fun == pytest.approx(ref.fun, rel=1e-9)
    if not isinstance(opt, optim.CoordinateDescent):
        assert got.nit <= 1.5 * ref.nit + 5, (got.nit, ref.nit)
    # the minimiser is now in the net
    theta = np.concatenate([p.reshape(-1) for p in net.params.values()])
    np.testing.assert_array_equal(theta, got.x)
    assert net.loss(x, t) == pytest.approx(got.fun, rel=1e-12)


def _fd_hessian(fun, x, h=1e-5):
    H = np.empty((x.size, x.size))
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        H[:, i] = (fun(x + e)[1] - fun(x - e)[1]) / (2 * h)
    return (H + H.T) / 2


def test_newton_finite_difference_hessian_is_accurate():
    x = np.array([-1.2, 1.0, 0.5])
    obj_calls = []

    def fun(x):
        obj_calls.append(1)
        return rosen(x)

    from cdl.optim.second_order import _Objective
    H = optim.Newton().hessian(_Objective("t", fun, 3), x)
    np.testing.assert_allclose(H, so.rosen_hess(x), rtol=1e-7, atol=1e-6)
    assert len(obj_calls) == 6


def test_newton_leaves_a_saddle_region():
    """f = x^2 - y^2 + y^4 starts where the Hessian is indefinite; the modified Cholesky
    still gives a descent direction and Newton finds a minimum (0, +-1/sqrt 2)."""
    def fun(v):
        x, y = v
        return x * x - y * y + y ** 4, np.array([2 * x, -2 * y + 4 * y ** 3])

    got = optim.Newton(gtol=1e-8).minimize(fun, [0.5, 0.01])
    assert got.converged
    np.testing.assert_allclose(np.abs(got.x), [0, 1 / math.sqrt(2)], atol=1e-8)


def test_newton_with_exact_hessian_converges_quadratically():
    got = optim.Newton(gtol=1e-10, hess=so.rosen_hess).minimize(rosen, [-1.2, 1.0])
    assert got.converged and got.nit < 30
    np.testing.assert_allclose(got.x, [1, 1], atol=1e-9)


def test_coordinate_descent_sweep_is_gauss_seidel_on_a_quadratic():
    rng = np.random.default_rng(1)
    Q = rng.standard_normal((5, 5))
    A, b = Q @ Q.T + 5 * np.eye(5), rng.standard_normal(5)

    def fun(x):
        return 0.5 * x @ A @ x - b @ x, A @ x - b

    x0 = rng.standard_normal(5)
    got = optim.CoordinateDescent(max_iter=1, gtol=1e-12).minimize(fun, x0)
    want = x0.copy()
    for i in range(5):
        want[i] = (b[i] - A[i] @ want + A[i, i] * want[i]) / A[i, i]
    np.testing.assert_allclose(got.x, want, rtol=1e-9, atol=1e-12)
    full = optim.CoordinateDescent(max_iter=500, gtol=1e-7).minimize(fun, x0)
    assert full.converged
    np.testing.assert_allclose(full.x, np.linalg.solve(A, b), atol=1e-7)


def test_coordinate_descent_with_explicit_blocks():
    A = np.diag([1.0, 2.0, 3.0, 4.0])

    def fun(x):
        return 0.5 * x @ A @ x, A @ x

    got = optim.CoordinateDescent(blocks=[[0, 3], [1], [2]], gtol=1e-7).minimize(fun, np.ones(4))
    assert got.converged and np.abs(got.x).max() < 1e-7
    for blocks, match in [([[0, 1], [1, 2, 3]], "exactly once"), ([[0, 1, 2, 9]], r"\[0, 4\)")]:
        with pytest.raises(ValueError, match=match):
            optim.CoordinateDescent(blocks=blocks).minimize(fun, np.ones(4))
    with pytest.raises(ValueError, match="block size"):
        optim.CoordinateDescent(blocks=0)


def test_convex_quadratic_all_methods():
    A, b = np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([1.0, 1.0])

    def fun(x):
        return 0.5 * x @ A @ x - b @ x, A @ x - b

    for opt in (optim.Newton(), optim.ConjugateGradient(), optim.BFGS(), optim.LBFGS(),
                optim.CoordinateDescent()):
        got = opt.minimize(fun, [5.0, -5.0])
        assert got.converged, opt
        np.testing.assert_allclose(got.x, np.linalg.solve(A, b), atol=1e-5)
    # Newton is exact on a quadratic in one step; CG in n = 2 (exact line searches)
    assert optim.Newton().minimize(fun, [5.0, -5.0]).nit == 1
    assert optim.ConjugateGradient(gtol=1e-8).minimize(fun, [5.0, -5.0]).nit <= 3


def test_bad_input_and_hyperparameters():
    with pytest.raises(ValueError, match="max_iter"):
        optim.BFGS(max_iter=0)
    with pytest.raises(ValueError, match="max_iter"):
        optim.Newton(max_iter=None)
    with pytest.raises(ValueError, match="gtol"):
        optim.LBFGS(gtol=0)
    with pytest.raises(ValueError, match="memory"):
        optim.LBFGS(memory=0)
    with pytest.raises(ValueError, match="c2"):
        optim.ConjugateGradient(c2=1.0)
    with pytest.raises(ValueError, match="x0"):
        optim.BFGS().minimize(rosen, [np.nan, 1.0])
    with pytest.raises(ValueError, match="3 entries for 2"):
        optim.BFGS().minimize(lambda x: (0.0, np.zeros(3)), [1.0, 1.0])
    with pytest.raises(ValueError, match=r"\(loss, grad\)"):
        optim.BFGS().minimize(lambda x: 1.0, [1.0, 1.0])
    with pytest.raises(ValueError, match="not finite"):
        optim.BFGS().minimize(lambda x: (np.inf, x), [1.0, 1.0])
    with pytest.raises(ValueError, match="LBFGS"):
        optim.Newton(max_params=10).minimize(lambda x: (x @ x, 2 * x), np.ones(11))
    with pytest.raises(ValueError, match="no trainable"):
        optim.model_closure(Sequential([L.ReLU()], loss=L.SoftmaxCrossEntropy()),
                            np.zeros((2, 3)), np.zeros(2, int))


def test_full_batch_optimizers_are_not_cli_choices():
    from cdl.cli import _optimizers
    assert {"newton", "bfgs", "lbfgs", "conjugategradient", "coordinatedescent"}.isdisjoint(
        _optimizers())
    assert all(c.first_order is False for c in (optim.Newton, optim.BFGS, optim.LBFGS,
                                                optim.ConjugateGradient,
                                                optim.CoordinateDescent))


