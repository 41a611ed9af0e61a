"""cdl.optim.base: the optimizer protocol: checks of update's dicts and of hyperparameters,
per-parameter state, learning-rate multipliers, state dicts."""
import numpy as np
import pytest

from cdl import optim
from cdl.optim.base import Optimizer, check_count, check_hyper


class Plain(Optimizer):
    """The smallest optimizer: p -= lr * g, counting its steps in a slot."""
    SLOTS = ("n",)
    NONNEGATIVE = ("n",)

    def __init__(self, lr=0.1, lr_multipliers=None):
        super().__init__(lr, lr_multipliers)

    def _step(self, key, p, g, K, lr):
        (n,) = self._slots(key, p, "n")
        n += 1
        p -= lr * g


def _params_and_grads(seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"0.W": (3, 4), "0.b": (4,), "1.0.W": (4, 4), "1.1.gamma": (4,), "2.W": (4, 2),
              "2.b": (2,)}
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    return params, grads


@pytest.mark.parametrize("cls", [optim.SGD, optim.Momentum, optim.Adam, optim.RMSProp])
def test_multipliers_give_exactly_the_per_array_rate(cls):
    lr = 0.05
    mults = {"": 0.1, "1": 0.5, "1.1.gamma": 2.0, "2": 1.0, "2.b.": 0.0}
    want_factor = {"0.W": 0.1, "0.b": 0.1, "1.0.W": 0.5, "1.1.gamma": 2.0, "2.W": 1.0,
                   "2.b": 0.0}
    params, grads = _params_and_grads()
    got = {k: v.copy() for k, v in params.items()}
    opt = cls(lr=lr, lr_multipliers=mults)
    for step in range(2):
        opt.update(got, grads)
    for k, factor in want_factor.items():
        assert opt.lr_factor(k) == factor
        one = {k: params[k].copy()}
        if factor == 0:  # a rate of 0: the array stays put (lr=0 itself is refused)
            np.testing.assert_array_equal(got[k], params[k])
            continue
        plain = cls(lr=lr * factor)
        for step in range(2):
            plain.update(one, {k: grads[k]})
        np.testing.assert_array_equal(got[k], one[k], err_msg=k)


def test_a_schedule_scales_every_multiplied_rate():
    """The schedule sets opt.lr; each array then moves at opt.lr * its multiplier."""
    params, grads = _params_and_grads()
    opt = optim.SGD(lr=1.0, lr_multipliers={"0": 0.1})
    opt.lr = optim.CosineLR(total=4).lr_at(1, 1.0)  # what the schedule sets at epoch 2
    got = {k: v.copy() for k, v in params.items()}
    opt.update(got, grads)
    for k in params:
        one = {k: params[k].copy()}
        optim.SGD(lr=opt.lr * (0.1 if k.startswith("0.") else 1.0)).update(one, {k: grads[k]})
        np.testing.assert_array_equal(got[k], one[k])


@pytest.mark.parametrize("mults, match", [
    ({"7": 0.1}, "'7' matches no parameter"),
    ({"0.V": 0.1}, "'0.V' matches no parameter"),
])
def test_a_multiplier_key_matching_nothing_is_refused(mults, match):
    params, grads = _params_and_grads()
    opt = optim.Adam(lr_multipliers=mults)
    with pytest.raises(ValueError, match=match):
        opt.update(params, grads)


@pytest.mark.parametrize("mults, match", [
    ({"0": -1.0}, "must be in"),
    ({"0": float("nan")}, "must be in"),
    ({0: 1.0}, "keys are flat"),
    ([("0", 1.0)], "must be a dict"),
])
def test_bad_multipliers(mults, match):
    with pytest.raises(ValueError, match=match):
        optim.SGD(lr_multipliers=mults)


def test_longest_matching_key_wins_at_a_dot_boundary():
    opt = Plain(lr_multipliers={"": 0.5, "1": 2.0, "1.0": 3.0, "10": 4.0})
    assert opt.lr_factor("1.0.W") == 3.0
    assert opt.lr_factor("1.1.W") == 2.0
    assert opt.lr_factor("10.W") == 4.0  # "1" is not a prefix of "10" at a dot
    assert opt.lr_factor("2.W") == 0.5
    assert Plain(lr_multipliers={"3": 2.0}).lr_factor("2.W") == 1.0


def test_state_is_made_on_first_use_and_counts_steps():
    p = {"w": np.ones(3, np.float32)}
    g = {"w": np.full(3, 2.0, np.float32)}
    opt = Plain(lr=0.25)
    assert opt.state == {} and opt.t == 0
    opt.update(p, g)
    opt.update(p, g)
    assert opt.t == 2 and opt.state["w"]["n"].tolist() == [2, 2, 2]
    np.testing.assert_array_equal(p["w"], [0, 0, 0])
    state = opt.state_dict()
    assert state["type"] == "Plain" and state["lr"] == 0.25 and state["t"] == 2
    again = Plain()
    again.load_state_dict(state, p)
    assert again.t == 2 and again.lr == 0.25
    assert again.state["w"]["n"] is not state["slots"]["w"]["n"]  # a copy


@pytest.mark.parametrize("bad, match", [
    (lambda p, g: ({"w": p["w"][::2]}, {"w": g["w"][::2]}), "must be a contiguous float array"),
    (lambda p, g: ({"w": p["w"].astype(np.int32)}, g), "must be a contiguous float array"),
    (lambda p, g: (p, {"w": g["w"].astype(np.complex64)}), "must be a real array"),
    (lambda p, g: (p, {"w": g["w"][:2]}), r"grad 'w' has shape \(2,\), param has \(4,\)"),
    (lambda p, g: (p, {"v": g["w"]}), r"keys differ \(no grad for \['w'\], no param for \['v'\]\)"),
])
def test_update_checks_the_dicts(bad, match):
    p, g = {"w": np.ones(4, np.float32)}, {"w": np.ones(4, np.float32)}
    with pytest.raises(ValueError, match="Plain.update: .*" + match):
        Plain().update(*bad(p, g))


def test_a_read_only_param_is_refused():
    w = np.ones(2)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="param 'w' is read-only"):
        Plain().update({"w": w}, {"w": np.ones(2)})


def test_integer_grads_are_used_in_the_params_dtype():
    p = {"w": np.ones(2, np.float32)}
    Plain(lr=0.5).update(p, {"w": np.array([1, 2])})
    assert p["w"].dtype == np.float32 and p["w"].tolist() == [0.5, 0.0]


@pytest.mark.parametrize("state, match", [
    ({"type": "Plain", "lr": 0.1, "t": 1}, "expected a dict with type, lr, t, slots"),
    ({"type": "SGD", "lr": 0.1, "t": 1, "slots": {}}, "not a Plain"),
    ({"type": "Plain", "lr": -1, "t": 1, "slots": {}}, "lr must be in"),
    ({"type": "Plain", "lr": 0.1, "t": -1, "slots": {}}, "t must be an int >= 0"),
    ({"type": "Plain", "lr": 0.1, "t": 1, "slots": {"w": {"m": np.zeros(2)}}}, r"must be \['n'\]"),
    ({"type": "Plain", "lr": 0.1, "t": 1, "slots": {"w": {"n": -np.ones(2)}}}, "negative values"),
    ({"type": "Plain", "lr": 0.1, "t": 1, "slots": {"w": {"n": np.full(2, np.nan)}}}, "NaN or Inf"),
    ({"type": "Plain", "lr": 0.1, "t": 1, "slots": {"v": {"n": np.zeros(2)}}}, "not a parameter"),
    ({"type": "Plain", "lr": 0.1, "t": 1, "slots": {"w": {"n": np.zeros(3)}}}, r"float64 \(3,\)"),
])
def test_load_state_dict_refuses_and_changes_nothing(state, match):
    opt = Plain(lr=0.3)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state, {"w": np.zeros(2)})
    assert opt.lr == 0.3 and opt.t == 0 and opt.state == {}


def test_check_hyper():
    assert check_hyper("X", "lr", 1) == 1.0 and type(check_hyper("X", "lr", np.float32(2))) is float
    assert check_hyper("X", "rho", 0.0, low=0, high=1) == 0.0
    for value, kw, match in [("0.1", {}, "must be a number"), (True, {}, "must be a number"),
                             (None, {}, "must be a number"), (float("nan"), {}, r"must be in \(-inf, inf\)"),
                             (0.0, {"low": 0, "low_open": True}, r"must be in \(0, inf\)"),
                             (1.0, {"low": 0, "high": 1}, r"must be in \[0, 1\)"),
                             (1.5, {"low": 0, "high": 1, "high_open": False}, r"must be in \[0, 1\]")]:
        with pytest.raises(ValueError, match=f"X: lr {match}"):
            check_hyper("X", "lr", value, **kw)


def test_check_count():
    assert check_count("X", "n", np.int64(3)) == 3
    for bad in [0, 2.0, True, "3"]:
        with pytest.raises(ValueError, match="X: n must be an int >= 1"):
            check_count("X", "n", bad)


def test_repr_shows_the_hyperparameters():
    assert repr(Plain(lr=0.5)) == "Plain(lr=0.5)"
    assert repr(Plain(lr=0.5, lr_multipliers={"0.": 2})) == "Plain(lr=0.5, lr_multipliers={'0': 2.0})"

