"""Ensemble averaging and bagging."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.data import load_digits
from cdl.ensemble import Ensemble, bagging
from cdl.layers.activation import softmax


def linear(i):
    return cdl.Sequential([L.Affine(64, 10, rng=i)], loss=L.SoftmaxCrossEntropy())


def test_predict_averages_member_softmax(rng):
    members = [linear(i) for i in range(3)]
    x = rng.standard_normal((5, 64)).astype(np.float32)
    ens = Ensemble(members)
    want = np.mean([softmax(m.predict(x).astype(np.float64)) for m in members], axis=0)
    np.testing.assert_allclose(ens.predict(x), want, rtol=1e-12)
    np.testing.assert_allclose(ens.predict(x).sum(axis=1), 1.0)
    t = ens.predict(x).argmax(axis=1)
    assert ens.accuracy(x, t) == 1.0 and ens.accuracy(x, np.eye(10)[t]) == 1.0
    assert len(ens) == 3


def test_bagging_trains_members_on_bootstrap_samples():
    (x, t), (xt, tt) = load_digits(flatten=True)
    x, t = x[:300], t[:300]
    ens = bagging(linear, lambda: cdl.optim.SGD(lr=0.5), x, t, n_models=4, seed=0,
                  epochs=5, batch_size=50)
    assert len(ens) == 4 and len(ens.histories) == 4
    for idx in ens.samples:
        assert len(idx) == 300 and 0.55 < len(np.unique(idx)) / 300 < 0.72  # 1 - 1/e ~ 0.63
    assert not np.array_equal(ens.samples[0], ens.samples[1])
    assert not np.allclose(ens.models[0].params["0.W"], ens.models[1].params["0.W"])
    assert 0.7 < ens.oob_accuracy <= 1.0
    accs = [m.accuracy(xt, tt) for m in ens.models]
    assert ens.accuracy(xt, tt) >= np.mean(accs) - 0.01
    again = bagging(linear, lambda: cdl.optim.SGD(lr=0.5), x, t, n_models=2, seed=0,
                    epochs=1, batch_size=50)
    np.testing.assert_array_equal(again.samples[0], ens.samples[0])


def test_bad_input(rng):
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])
    with pytest.raises(ValueError, match="member 1 .* has no predict"):
        Ensemble([linear(0), object()])
    other = cdl.Sequential([L.Affine(64, 3, rng=0)])
    with pytest.raises(ValueError, match=r"member 1 returned shape \(2, 3\), member 0 \(2, 10\)"):
        Ensemble([linear(0), other]).predict(rng.standard_normal((2, 64)).astype(np.float32))
    with pytest.raises(ValueError, match="n_models must be a positive int"):
        bagging(linear, cdl.optim.SGD, np.zeros((4, 64), np.float32), np.zeros(4, int), n_models=0)
