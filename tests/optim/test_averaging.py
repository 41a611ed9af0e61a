"""Polyak-Ruppert averaging and EMA of parameters, swapped in for evaluation."""
import numpy as np
import pytest

import cdl
from cdl import optim
from cdl.data import load_digits
from cdl.models import mlp


class Recorder(cdl.Callback):
    """Keeps a copy of the params after every update and what evaluation saw."""

    def __init__(self):
        self.iterates, self.at_eval, self.after_eval = [], [], []

    def on_batch_end(self, trainer, batch, logs):
        self.iterates.append({k: v.copy() for k, v in trainer.model.params.items()})

    def on_epoch_end(self, trainer, epoch, logs):
        self.after_eval.append({k: v.copy() for k, v in trainer.model.params.items()})


class SeesEval(cdl.Callback):
    """Registered after the averager: sees the params the evaluation uses."""

    def __init__(self):
        self.seen = []

    def on_eval_begin(self, trainer):
        self.seen.append({k: v.copy() for k, v in trainer.model.params.items()})


def _fit(averager, epochs=2):
    (x, t), (xt, tt) = load_digits()
    net = mlp(hidden=(16,), rng=0).astype(np.float64)
    rec, sees = Recorder(), SeesEval()
    tr = cdl.Trainer(net, optim.Momentum(lr=0.05), batch_size=50, epochs=epochs, seed=0,
                     verbose=False, callbacks=[rec, averager, sees])
    h = tr.fit(x[:200].astype(np.float64), t[:200],
               validation_data=(xt[:50].astype(np.float64), tt[:50]))
    return net, rec, sees, h


def test_polyak_average_is_the_mean_of_the_iterates_and_is_evaluated():
    avg = optim.PolyakAverage()
    net, rec, sees, _ = _fit(avg)
    assert avg.n == len(rec.iterates) == 8
    for epoch, n in enumerate([4, 8]):
        for k in net.params:
            mean = np.mean([it[k] for it in rec.iterates[:n]], axis=0)
            np.testing.assert_allclose(sees.seen[epoch][k], mean, rtol=1e-12, atol=1e-15)
            # the live parameters were put back after the evaluation
            np.testing.assert_array_equal(rec.after_eval[epoch][k], rec.iterates[n - 1][k])
    # finalize: the model ends with the average
    for k, p in net.params.items():
        np.testing.assert_allclose(p, np.mean([it[k] for it in rec.iterates], axis=0), rtol=1e-12)


def test_polyak_average_from_a_later_epoch():
    avg = optim.PolyakAverage(start=2, finalize=False)
    net, rec, sees, _ = _fit(avg)
    assert avg.n == 4
    for k, p in net.params.items():
        np.testing.assert_allclose(avg.average[k],
                                   np.mean([it[k] for it in rec.iterates[4:]], axis=0), rtol=1e-12)
        np.testing.assert_array_equal(p, rec.iterates[-1][k])  # finalize=False: live params
        np.testing.assert_array_equal(sees.seen[0][k], rec.iterates[3][k])  # nothing to swap yet


def test_ema_follows_its_formula():
    ema = optim.EMA(decay=0.5)
    net, rec, sees, _ = _fit(ema, epochs=1)
    for k in net.params:
        want = rec.iterates[0][k].copy()
        for n, it in enumerate(rec.iterates[1:], start=2):
            d = min(0.5, n / (9.0 + n))
            want = d * want + (1 - d) * it[k]
        np.testing.assert_allclose(sees.seen[0][k], want, rtol=1e-12)
        np.testing.assert_allclose(net.params[k], want, rtol=1e-12)


def test_applied_context_swaps_and_restores():
    net = mlp(hidden=(4,), rng=0)
    ema = optim.EMA(decay=0.9)
    live = {k: v.copy() for k, v in net.params.items()}
    ema.update(net.params)
    for p in net.params.values():
        p += 1.0
    ema.update(net.params)
    moved = {k: v.copy() for k, v in net.params.items()}
    with ema.applied(net):
        for k, p in net.params.items():
            np.testing.assert_allclose(p, ema.average[k])
            assert not np.allclose(p, moved[k]) and not np.allclose(p, live[k])
    for k, p in net.params.items():
        np.testing.assert_array_equal(p, moved[k])


def test_bad_arguments_and_changed_models():
    with pytest.raises(ValueError, match="decay"):
        optim.EMA(decay=1.0)
    with pytest.raises(ValueError, match="start"):
        optim.PolyakAverage(start=0)
    ema = optim.EMA()
    ema.update({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="changed"):
        ema.update({"v": np.zeros(3)})
    with pytest.raises(ValueError, match="changed shape"):
        ema.update({"w": np.zeros(4)})
    net = mlp(hidden=(4,), rng=0)
    with pytest.raises(ValueError, match="not the averaged ones"):
        ema.swap_in(net)
