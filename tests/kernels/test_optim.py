"""Fused optimizer kernels against the plain NumPy versions in reference_optim."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl.kernels import optim as K
from cdl.kernels import reference_optim as ref

# name -> (number of state arrays, scalar hyperparameters after them)
CASES = {
    "sgd_update": (0, (0.05,)),
    "momentum_update": (1, (0.05, 0.9)),
    "nesterov_update": (1, (0.05, 0.9)),
    "adagrad_update": (1, (0.05, 1e-7)),
    "adadelta_update": (2, (1.0, 0.95, 1e-6)),
    "rmsprop_update": (1, (0.01, 0.9, 1e-8)),
    "adam_update": (2, (0.01, 0.9, 0.999, 1e-8, 3)),
    "weight_decay_grad": (0, (0.1, 0.01)),
    "ema_update": (0, (0.9,)),
}


def _state(n_state, shape, rng, dtype):
    # Second-moment states are non-negative; first-moment ones are signed.
    return [np.abs(rng.standard_normal(shape)).astype(dtype) for _ in range(n_state)]


def _run_both(name, shape, dtype, seed, steps=3):
    n_state, scalars = CASES[name]
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    g[..., 0] = 0  # a zero gradient (and, for weight decay, a zero weight) in every case
    p.reshape(-1)[0] = 0
    state = _state(n_state, shape, rng, dtype)
    mine = [p.copy(), *(s.copy() for s in state)]
    want = [p.copy(), *(s.copy() for s in state)]
    g_before = g.copy()
    for _ in range(steps):
        getattr(K, name)(mine[0], g, *mine[1:], *scalars)
        getattr(ref, name)(want[0], g, *want[1:], *scalars)
    np.testing.assert_array_equal(g, g_before)  # the gradient is only read
    return mine, want


shapes = st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(CASES)), shapes, st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2**31))
def test_kernels_match_numpy(name, shape, dtype, seed):
    mine, want = _run_both(name, shape, dtype, seed)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for a, b in zip(mine, want):
        assert a.dtype == dtype and a.shape == shape
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("size", [K.PARALLEL_MIN, K.PARALLEL_MIN + 4097])
def test_parallel_path_matches_numpy(name, size):
    """Sizes at the parallel threshold, and with slices of unequal lengths."""
    mine, want = _run_both(name, (size,), np.float64, 5, steps=2)
    for a, b in zip(mine, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_parallel_and_serial_bodies_agree_bitwise():
    rng = np.random.default_rng(0)
    n = 3 * K.PARALLEL_MIN + 5
    p, g = rng.standard_normal(n), rng.standard_normal(n)
    m, v = np.zeros(n), np.zeros(n)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    K._launch(K._adam, [p, g, m, v], (0.01, 1.5, 0.9, 0.999, 1e-8))
    K._adam(p2, g, m2, v2, 0.01, 1.5, 0.9, 0.999, 1e-8)
    np.testing.assert_array_equal(p, p2)
    np.testing.assert_array_equal(v, v2)


def test_weight_decay_sign_of_zero_is_zero():
    g = np.zeros(3)
    K.weight_decay_grad(g, np.array([-2.0, 0.0, 3.0]), 0.0, 0.5)
    np.testing.assert_array_equal(g, [-0.5, 0.0, 0.5])


def test_bad_arrays_are_refused_before_compiled_code():
    p = np.zeros(4)
    with pytest.raises(ValueError, match="argument 2 .* 4 elements"):
        K.sgd_update(p, np.zeros(5), 0.1)
    with pytest.raises(ValueError, match="argument 2 .*float64"):
        K.sgd_update(p, np.zeros(4, np.float32), 0.1)
    with pytest.raises(ValueError, match="argument 3 .*writeable"):
        v = np.zeros(4)
        v.flags.writeable = False
        K.momentum_update(p, np.zeros(4), v, 0.1, 0.9)
    with pytest.raises(ValueError, match="updated array"):
        K.sgd_update(np.zeros((4, 4))[:, 0], np.zeros(4), 0.1)
    with pytest.raises(ValueError, match="updated array"):
        K.sgd_update(np.zeros(4, np.int64), np.zeros(4, np.int64), 1)
    with pytest.raises(ValueError, match="step t"):
        K.adam_update(p, p.copy(), p.copy(), p.copy(), 0.1, 0.9, 0.99, 1e-8, 0)


def test_reductions_and_clip():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5))
    assert K.sum_squares(x) == pytest.approx(float((x * x).sum()), rel=1e-12)
    assert K.sum_abs(x) == pytest.approx(float(np.abs(x).sum()), rel=1e-12)
    assert type(K.sum_squares(x.astype(np.float32))) is float
    y = x.copy()
    y[0, 0] = np.nan
    assert K.clip_by_value(y, 0.5) is y
    assert np.isnan(y[0, 0])
    np.testing.assert_array_equal(y.reshape(-1)[1:], np.clip(x, -0.5, 0.5).reshape(-1)[1:])
