"""First-order optimizers against their textbook formulas over 20 steps (float64)."""
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


def _formula(start, gs, step, **state0):
    """Apply step(p, g, state) -> p per key, with state a dict of zero-initialised arrays."""
    out = {}
    for k in start:
        p = start[k].copy()
        state = {name: np.zeros_like(p) for name in state0}
        for g in gs:
            p = step(p, g[k], state)
        out[k] = p
    return out


def _momentum(lr, a):
    def step(p, g, s):
        s["v"] = a * s["v"] - lr * g
        return p + s["v"]
    return step


def _nesterov_lookahead(lr, a):
    def step(P, g, s):
        v_new = a * s["v"] - lr * g
        P = P + a * v_new - lr * g
        s["v"] = v_new
        return P
    return step


def _adagrad(lr, eps):
    def step(p, g, s):
        s["h"] = s["h"] + g * g
        return p - lr * g / (eps + np.sqrt(s["h"]))
    return step


def _adadelta(rho, eps, lr=1.0):
    def step(p, g, s):
        s["h"] = rho * s["h"] + (1 - rho) * g * g
        d = -(np.sqrt(eps + s["r"]) / np.sqrt(eps + s["h"])) * g
        s["r"] = rho * s["r"] + (1 - rho) * d * d
        return p + lr * d
    return step


def _rmsprop(lr, rho, eps):
    def step(p, g, s):
        s["h"] = rho * s["h"] + (1 - rho) * g * g
        return p - lr * g / np.sqrt(eps + s["h"])
    return step


@pytest.mark.parametrize("opt, step, state", [
    (optim.Momentum(lr=0.05, momentum=0.8), _momentum(0.05, 0.8), ["v"]),
    (optim.Nesterov(lr=0.05, momentum=0.8), _nesterov_lookahead(0.05, 0.8), ["v"]),
    (optim.AdaGrad(lr=0.1, eps=1e-6), _adagrad(0.1, 1e-6), ["h"]),
    (optim.AdaDelta(rho=0.9, eps=1e-5), _adadelta(0.9, 1e-5), ["h", "r"]),
    (optim.AdaDelta(lr=0.5, rho=0.95, eps=1e-6), _adadelta(0.95, 1e-6, lr=0.5), ["h", "r"]),
    (optim.RMSProp(lr=0.01, rho=0.8, eps=1e-6), _rmsprop(0.01, 0.8, 1e-6), ["h"]),
    (optim.RMSProp(lr=0.01, decay_rate=0.99), _rmsprop(0.01, 0.99, 1e-8), ["h"]),
], ids=["momentum", "nesterov", "adagrad", "adadelta", "adadelta-lr", "rmsprop",
        "rmsprop-decay_rate"])
def test_formula(opt, step, state):
    start, gs, got = _run(opt)
    want = _formula(start, gs, step, **dict.fromkeys(state))
    for k in start:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-14)
    assert opt.t == 20


def test_nesterov_matches_its_definition_on_a_quadratic():
    """v_{t+1} = a v_t - lr grad(theta_t + a v_t), theta_{t+1} = theta_t + v_{t+1}; the
    optimizer holds Theta_t = theta_t + a v_t and only sees the gradient there."""
    rng = np.random.default_rng(0)
    Q = rng.standard_normal((4, 4))
    A, b = Q @ Q.T + np.eye(4), rng.standard_normal(4)

    def grad(x):
        return A @ x - b

    lr, a = 0.05, 0.9
    theta, v = rng.standard_normal(4), np.zeros(4)
    params = {"x": theta.copy()}
    opt = optim.Nesterov(lr=lr, momentum=a)
    for _ in range(50):
        v = a * v - lr * grad(theta + a * v)
        theta = theta + v
        opt.update(params, {"x": grad(params["x"])})
        np.testing.assert_allclose(params["x"], theta + a * v, rtol=1e-10, atol=1e-12)


def test_rmsprop_accepts_the_books_name_once():
    assert optim.RMSProp(decay_rate=0.99).rho == 0.99
    assert optim.RMSProp().rho == 0.9
    assert optim.RMSProp(rho=0.5).decay_rate == 0.5
    with pytest.raises(ValueError, match="not both"):
        optim.RMSProp(rho=0.9, decay_rate=0.99)


ALL_FIRST_ORDER = [optim.SGD, optim.Momentum, optim.Nesterov, optim.AdaGrad, optim.AdaDelta,
                   optim.RMSProp, optim.Adam]


@pytest.mark.parametrize("make", [lambda: optim.SGD(lr=0.1), lambda: optim.Adam(lr=0.1),
                                  lambda: optim.Momentum(lr=0.1),
                                  lambda: optim.Nesterov(lr=0.1), lambda: optim.AdaGrad(lr=0.1),
                                  lambda: optim.AdaDelta(), lambda: optim.RMSProp(lr=0.01)])
def test_large_arrays_take_the_parallel_path_and_agree(make):
    small = _run(make(), steps=3, shape=(4, 4), dtype=np.float32)[2]["w"]
    big = _run(make(), steps=3, shape=(300, 300), dtype=np.float32)[2]["w"]
    assert big.dtype == np.float32 and small.dtype == np.float32
    ref = _run(make(), steps=3, shape=(300, 300), dtype=np.float64)[2]["w"]
    np.testing.assert_allclose(big, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opt", [
    optim.SGD(lr=0.05), optim.Momentum(lr=0.02, momentum=0.9),
    optim.Nesterov(lr=0.02, momentum=0.9), optim.AdaGrad(lr=0.5),
    # With the default eps=1e-6 AdaDelta ends in a limit cycle about 0.05 from the minimum
    # of this deterministic problem (its step sqrt(r)/sqrt(h) grows as g shrinks).
    optim.AdaDelta(rho=0.95, eps=1e-3),
    optim.RMSProp(lr=0.01), optim.Adam(lr=0.1),
], ids=lambda o: type(o).__name__)
def test_convex_quadratic_converges(opt):
    """f(x) = x.A.x / 2 - b.x, ill-conditioned (kappa = 10): every method reaches A^-1 b."""
    A, b = np.array([[2.0, 0.5], [0.5, 10.0]]), np.array([1.0, -1.0])
    target = np.linalg.solve(A, b)
    p = {"x": np.array([3.0, -2.0])}
    for _ in range(1500):
        opt.update(p, {"x": A @ p["x"] - b})
    assert np.linalg.norm(p["x"] - target) < 2e-2, (type(opt).__name__, p["x"], target)


@pytest.mark.parametrize("make, match", [
    (lambda: optim.SGD(lr=0), "lr"),
    (lambda: optim.SGD(lr=-1), "lr"),
    (lambda: optim.Adam(beta1=1.0), "beta1"),
    (lambda: optim.Adam(beta2=-0.1), "beta2"),
    (lambda: optim.Adam(eps=0), "eps"),
    (lambda: optim.Adam(lr="fast"), "lr"),
    (lambda: optim.Adam(lr=float("nan")), "lr"),
    (lambda: optim.Momentum(momentum=1.0), "momentum"),
    (lambda: optim.Momentum(momentum=-0.1), "momentum"),
    (lambda: optim.Nesterov(momentum=1.5), "momentum"),
    (lambda: optim.Nesterov(lr=0), "lr"),
    (lambda: optim.AdaGrad(eps=0), "eps"),
    (lambda: optim.AdaGrad(eps=-1e-8), "eps"),
    (lambda: optim.AdaDelta(rho=1.0), "rho"),
    (lambda: optim.AdaDelta(eps=0), "eps"),
    (lambda: optim.RMSProp(rho=1.2), "rho"),
    (lambda: optim.RMSProp(decay_rate=-0.5), "rho"),
    (lambda: optim.RMSProp(eps=0), "eps"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("cls", ALL_FIRST_ORDER)
def test_mismatched_params_and_grads(cls):
    opt = cls()
    with pytest.raises(ValueError, match="keys differ"):
        opt.update({"a": np.zeros(3)}, {"b": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        opt.update({"a": np.zeros(3)}, {"a": np.zeros(4)})
    assert opt.t == 0  # nothing was applied


@pytest.mark.parametrize("cls", ALL_FIRST_ORDER)
def test_float32_stays_float32_and_moves_in_place(cls):
    w = np.ones((3, 4), np.float32)
    params = {"w": w}
    cls().update(params, {"w": np.full((3, 4), 0.5, np.float32)})
    assert params["w"] is w and w.dtype == np.float32 and (w < 1).all()


@pytest.mark.parametrize("cls", [optim.Momentum, optim.AdaGrad, optim.Adam])
def test_a_parameter_that_changes_shape_needs_a_new_optimizer(cls):
    opt = cls()
    opt.update({"w": np.zeros(3)}, {"w": np.ones(3)})
    with pytest.raises(ValueError, match="changed shape"):
        opt.update({"w": np.zeros(4)}, {"w": np.ones(4)})


@pytest.mark.parametrize("cls", ALL_FIRST_ORDER)
def test_state_dict_round_trip_continues_bit_for_bit(cls):
    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(6)]
    a = cls(lr=0.05)
    for g in grads[:3]:
        a.update(params, g)
    state = a.state_dict()
    assert state["type"] == cls.__name__ and state["t"] == 3
    assert all(set(st) == set(cls.SLOTS) for st in state["slots"].values())
    b = cls(lr=0.05)
    b.load_state_dict(state, params)
    copy = {k: v.copy() for k, v in params.items()}
    for g in grads[3:]:
        a.update(params, g)
        b.update(copy, g)
    for k in params:
        np.testing.assert_array_equal(params[k], copy[k])


def test_load_state_dict_checks_everything_before_changing_anything():
    params = {"w": np.zeros(3)}
    opt = optim.Adam()
    opt.update(params, {"w": np.ones(3)})
    good = opt.state_dict()
    bad = [({**good, "type": "SGD"}, "not a Adam"),
           ({**good, "t": -1}, "t must be"),
           ({**good, "lr": float("nan")}, "lr must be"),
           ({**good, "slots": {"w": {"m": np.zeros(3)}}}, "must be"),
           ({**good, "slots": {"x": good["slots"]["w"]}}, "not a parameter"),
           ({**good, "slots": {"w": {"m": np.zeros(4), "v": np.zeros(3)}}}, "shape|float64 \\(4"),
           ({**good, "slots": {"w": {"m": np.zeros(3), "v": -np.ones(3)}}}, "negative"),
           ({**good, "slots": {"w": {"m": np.zeros(3, np.float32), "v": np.zeros(3)}}},
            "float32"),
           ({**good, "slots": {"w": {"m": np.zeros(3, object), "v": np.zeros(3)}}}, "float")]
    fresh = optim.Adam(lr=0.5)
    for state, match in bad:
        with pytest.raises(ValueError, match=match):
            fresh.load_state_dict(state, params)
    assert fresh.t == 0 and fresh.lr == 0.5 and fresh.state == {}
