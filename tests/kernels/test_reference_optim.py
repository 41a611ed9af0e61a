"""cdl.kernels.reference_optim, the oracles of the fused update kernels, against the book's
update rules written out by hand for two steps on scalars."""
import math

import numpy as np
import pytest

from cdl.kernels import reference_optim as ref


def _arrays(*values):
    return [np.array([v], dtype=np.float64) for v in values]


def test_sgd():
    p, g = _arrays(1.0, 0.5)
    ref.sgd_update(p, g, 0.1)
    assert p[0] == pytest.approx(0.95)


def test_momentum_and_nesterov():
    p, g, v = _arrays(1.0, 0.5, 0.0)
    for _ in range(2):
        ref.momentum_update(p, g, v, 0.1, 0.9)
    # v1 = -0.05, p1 = 0.95; v2 = 0.9 v1 - 0.05 = -0.095, p2 = 0.855
    assert (v[0], p[0]) == (pytest.approx(-0.095), pytest.approx(0.855))
    p, g, v = _arrays(1.0, 0.5, 0.0)
    ref.nesterov_update(p, g, v, 0.1, 0.9)
    # v1 = -0.05; p += momentum * v1 - lr * g = -0.045 - 0.05
    assert (v[0], p[0]) == (pytest.approx(-0.05), pytest.approx(0.905))


def test_adagrad_and_rmsprop():
    p, g, h = _arrays(1.0, 0.5, 0.0)
    for _ in range(2):
        ref.adagrad_update(p, g, h, 0.1, 1e-7)
    assert h[0] == pytest.approx(0.5)
    assert p[0] == pytest.approx(1 - 0.1 * 0.5 / math.sqrt(0.25) - 0.1 * 0.5 / math.sqrt(0.5))
    p, g, h = _arrays(1.0, 0.5, 0.0)
    ref.rmsprop_update(p, g, h, 0.01, 0.99, 1e-8)
    assert h[0] == pytest.approx(0.01 * 0.25)
    assert p[0] == pytest.approx(1 - 0.01 * 0.5 / math.sqrt(1e-8 + 0.0025))


def test_adadelta():
    p, g, h, r = _arrays(1.0, 0.5, 0.0, 0.0)
    ref.adadelta_update(p, g, h, r, 1.0, 0.95, 1e-6)
    h1 = 0.05 * 0.25
    d = -math.sqrt(1e-6) / math.sqrt(1e-6 + h1) * 0.5
    assert (h[0], p[0], r[0]) == (pytest.approx(h1), pytest.approx(1 + d),
                                  pytest.approx(0.05 * d * d))


def test_adam_is_bias_corrected():
    p, g, m, v = _arrays(1.0, 0.5, 0.0, 0.0)
    ref.adam_update(p, g, m, v, 0.001, 0.9, 0.999, 1e-8, 1)
    # after one step m_hat = g and v_hat = g^2: the step is lr * sign(g), nearly
    assert p[0] == pytest.approx(1 - 0.001 * 0.5 / (0.5 + 1e-8))
    assert (m[0], v[0]) == (pytest.approx(0.05), pytest.approx(0.00025))
    ref.adam_update(p, g, m, v, 0.001, 0.9, 0.999, 1e-8, 2)
    m_hat, v_hat = 0.095 / (1 - 0.81), (0.999 * 0.00025 + 0.00025) / (1 - 0.999 ** 2)
    assert p[0] == pytest.approx(1 - 0.001 * 0.5 / (0.5 + 1e-8)
                                 - 0.001 * m_hat / (math.sqrt(v_hat) + 1e-8))


def test_weight_decay_and_ema():
    g = np.array([0.5, 0.5, 0.5])
    w = np.array([2.0, -2.0, 0.0])
    ref.weight_decay_grad(g, w, 0.1, 0.01)
    np.testing.assert_allclose(g, [0.71, 0.29, 0.5])
    avg, p = np.array([1.0, 0.0]), np.array([3.0, 2.0])
    ref.ema_update(avg, p, 0.75)
    np.testing.assert_allclose(avg, [1.5, 0.5])


def test_updates_work_in_place_on_any_shape():
    p = np.ones((2, 3, 4))
    keep = p
    ref.momentum_update(p, np.ones_like(p), np.zeros_like(p), 0.5, 0.0)
    assert p is keep and (p == 0.5).all()
