import io

import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.data import load_digits
from cdl.models import mlp


def _data():
    (x, t), (xt, tt) = load_digits()
    return x[:300], t[:300], xt[:100], tt[:100]


def _fit(seed=0, epochs=2, **kw):
    x, t, xt, tt = _data()
    net = mlp(hidden=(32,), rng=seed)
    tr = cdl.Trainer(net, cdl.optim.Adam(lr=1e-2), batch_size=32, epochs=epochs, seed=seed,
                     verbose=False, **kw)
    return net, tr, tr.fit(x, t, validation_data=(xt, tt))


def test_history_and_learning():
    net, tr, h = _fit(epochs=5)
    assert set(h) >= {"epoch", "loss", "train_acc", "val_loss", "val_acc", "time"}
    assert len(h["loss"]) == 5 and h["loss"][-1] < h["loss"][0]
    assert h["val_acc"][-1] > 0.8


def test_same_seed_same_result():
    a, _, ha = _fit(seed=3)
    b, _, hb = _fit(seed=3)
    assert ha["loss"] == hb["loss"]
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    c, _, hc = _fit(seed=4)
    assert hc["loss"] != ha["loss"]


def test_nan_in_data_names_epoch_and_batch():
    x, t, _, _ = _data()
    x = x.copy()
    x[100, 0, 3, 3] = np.nan
    net = mlp(hidden=(8,), rng=0)
    tr = cdl.Trainer(net, cdl.optim.SGD(), batch_size=50, epochs=1, seed=0, verbose=False)
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch \d+"):
        tr.fit(x, t)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_loss_stops_with_a_clear_message():
    x, t, _, _ = _data()
    net = mlp(hidden=(8,), rng=0)
    tr = cdl.Trainer(net, cdl.optim.SGD(lr=1e30), batch_size=50, epochs=3, seed=0, verbose=False)
    with pytest.raises(FloatingPointError, match=r"loss is .* at epoch \d+, batch \d+"):
        tr.fit(x, t)


def test_callbacks_see_batches_and_can_stop():
    seen = []

    class Stop(cdl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            seen.append(logs["loss"])

        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop_training = epoch == 2

    _, _, h = _fit(epochs=5, callbacks=[Stop()])
    assert len(h["loss"]) == 2
    assert len(seen) == 2 * 10  # 300 samples in batches of 32


def test_augment_sees_only_training_batches():
    calls = []

    def augment(x, t, rng):
        calls.append(len(x))
        return x, t
    _fit(epochs=1, augment=augment)
    assert sum(calls) == 300


def test_mismatched_lengths():
    net = mlp(hidden=(8,), rng=0)
    tr = cdl.Trainer(net, cdl.optim.SGD(), verbose=False)
    with pytest.raises(ValueError, match="99 targets for 100 samples"):
        tr.fit(np.zeros((100, 64), np.float32), np.zeros(99, np.int64))


def test_verbose_prints_a_line_per_epoch():
    out = io.StringIO()
    x, t, xt, tt = _data()
    tr = cdl.Trainer(mlp(hidden=(8,), rng=0), cdl.optim.Adam(), batch_size=64, epochs=2,
                     seed=0, out=out, progress=False)
    tr.fit(x, t, validation_data=(xt, tt))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch   1/2") and "val acc" in lines[0]


def test_eval_hooks_wrap_the_evaluation_even_when_it_fails(monkeypatch):
    calls = []

    class Hooks(cdl.Callback):
        def on_eval_begin(self, trainer):
            calls.append("eval_begin")

        def on_eval_end(self, trainer):
            calls.append("eval_end")

        def on_epoch_end(self, trainer, epoch, logs):
            calls.append("epoch_end")

    x, t, xt, tt = _data()
    tr = cdl.Trainer(mlp(hidden=(8,), rng=0), cdl.optim.SGD(), batch_size=100, epochs=2,
                     seed=0, verbose=False, callbacks=[Hooks()])
    tr.fit(x, t, validation_data=(xt, tt))
    assert calls == ["eval_begin", "eval_end", "epoch_end"] * 2

    def broken(*args):
        raise RuntimeError("evaluation failed")

    calls.clear()
    monkeypatch.setattr(tr, "evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        tr.fit(x, t)
    assert calls == ["eval_begin", "eval_end"]
