"""Ensemble averaging, bagging and stacking."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.data import load_digits
from cdl.ensemble import Ensemble, Stacked, averaging_meta, bagging, stacking
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


class Recorder:
    """A fake member: x[:, 0] is the sample's id; its scores (N, 2) are (5, 0) for the ids it
    was trained on and (0, 0) for the others, so its probabilities say what it saw."""

    def __init__(self, i, log):
        self.i, self.seen, self.log = i, np.array([], dtype=int), log

    def fit(self, x, t, seed):
        self.seen = x[:, 0].astype(int)
        self.log.append((self.i, seed, self.seen))

    def predict(self, x, batch_size=None):
        saw = np.isin(x[:, 0].astype(int), self.seen)
        return np.stack([5.0 * saw, np.zeros(len(x))], axis=1)


def test_stacking_features_are_out_of_fold():
    log = []
    x = np.arange(23, dtype=np.float32)[:, None].repeat(3, axis=1)
    t = np.arange(23) % 2
    st = stacking([lambda i: Recorder(i, log)] * 2, None, x, t, folds=4, seed=3, meta_epochs=2,
                  train_fn=lambda m, xs, ts, i: m.fit(xs, ts, i))
    assert isinstance(st, Stacked) and len(st) == 2 and st.oof.shape == (23, 2, 2)
    np.testing.assert_allclose(st.oof[:, :, 0], 0.5)  # no member scored a sample it trained on
    assert len(log) == 2 * 5 and len({i for i, _, _ in log}) == 10
    assert all(i == seed for i, seed, _ in log)
    for m in range(2):
        fits = [seen for _, _, seen in log[5 * m:5 * m + 4]]
        left_out = [np.setdiff1d(np.arange(23), seen) for seen in fits]
        np.testing.assert_array_equal(np.sort(np.concatenate(left_out)), np.arange(23))
        for k, out in enumerate(left_out):  # fold k is what fit k left out, stratified
            np.testing.assert_array_equal(out, np.flatnonzero(st.fold_of == k))
            assert abs(np.sum(t[out] == 0) - np.sum(t[out] == 1)) <= 1
        np.testing.assert_array_equal(np.sort(log[5 * m + 4][2]), np.arange(23))  # refit: all
    assert (st.member_probabilities(x)[:, :, 0] > 0.99).all()
    assert st.features(x).shape == (23, 4) and st.features(x).dtype == np.float32


def test_stacking_on_digits_trains_predicts_and_repeats():
    (x, t), (xt, tt) = load_digits(flatten=True)
    x, t = x[:240], t[:240]

    def mlp(i):
        return cdl.Sequential([L.Affine(64, 16, rng=i), L.Tanh(), L.Affine(16, 10, rng=i + 1)],
                              loss=L.SoftmaxCrossEntropy())

    def run():
        return stacking([linear, mlp], lambda: cdl.optim.SGD(lr=0.5), x, t, folds=3, seed=0,
                        epochs=4, batch_size=40, meta_epochs=20)

    st = run()
    p = st.predict_proba(xt)
    assert p.shape == (len(xt), 10) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert st.accuracy(xt, tt) > 0.5  # chance is 0.1
    assert st.accuracy(xt, tt) >= Ensemble(st.models).accuracy(xt, tt) - 0.05  # ~ averaging
    assert st.accuracy(xt, np.eye(10)[tt]) == st.accuracy(xt, tt)
    assert len(st.histories) == 2 and len(st.meta_history["loss"]) == 20
    np.testing.assert_array_equal(run().predict(xt), p)


def test_averaging_meta_starts_as_the_average(rng):
    probs = rng.dirichlet(np.ones(4), size=(3, 6))  # (M, N, K)
    meta = averaging_meta(3, 4)
    feats = probs.transpose(1, 0, 2).reshape(6, 12).astype(np.float32)
    np.testing.assert_array_equal(meta.predict(feats).argmax(axis=1),
                                  probs.mean(axis=0).argmax(axis=1))


def test_stacking_bad_input():
    x, t = np.zeros((6, 64), np.float32), np.zeros(6, int)
    opt = cdl.optim.SGD
    with pytest.raises(ValueError, match="folds must be an int >= 2"):
        stacking([linear], opt, x, t, folds=1)
    with pytest.raises(ValueError, match="7 folds for 6 samples"):
        stacking([linear], opt, x, t, folds=7)
    with pytest.raises(ValueError, match="builders must be a non-empty list"):
        stacking([], opt, x, t)
    with pytest.raises(ValueError, match="2 optimizer factories for 1 builders"):
        stacking([linear], [opt, opt], x, t)
    with pytest.raises(ValueError, match="meta-learner .* has no predict"):
        Stacked([linear(0)], object())
