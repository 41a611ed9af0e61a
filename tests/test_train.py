import io

import numpy as np
import pytest

import cdl
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


@pytest.mark.parametrize("kw, match", [
    ({"batch_size": 2.7}, r"Trainer: batch_size must be a positive int, got 2\.7"),
    ({"batch_size": 32.0}, r"Trainer: batch_size must be a positive int, got 32\.0"),
    ({"batch_size": 0}, r"Trainer: batch_size must be a positive int, got 0"),
    ({"epochs": 1.5}, r"Trainer: epochs must be an int >= 0, got 1\.5"),
    ({"epochs": -1}, r"Trainer: epochs must be an int >= 0, got -1"),
])
def test_batch_size_and_epochs_are_ints_not_truncated(kw, match):
    """Issue 17: batch_size=2.7 trained with batches of 2."""
    with pytest.raises(ValueError, match=match):
        cdl.Trainer(mlp(hidden=(8,), rng=0), cdl.optim.SGD(), verbose=False, **kw)


def test_numpy_int_batch_size_and_epochs():
    tr = cdl.Trainer(mlp(hidden=(8,), rng=0), cdl.optim.SGD(), batch_size=np.int64(50),
                     epochs=np.int32(1), verbose=False)
    assert (tr.batch_size, tr.epochs) == (50, 1)


@pytest.mark.parametrize("which, match", [
    ("x", r"Trainer.fit: validation_data x of shape \(100, 1, 8, 8\) has 1 NaN/Inf"),
    ("t", r"Trainer.fit: validation_data t of shape \(100, 10\) has 1 NaN/Inf"),
])
def test_nan_in_validation_data_is_refused_up_front(which, match):
    """Issue 17: a NaN in validation data only made val_loss NaN, which EarlyStopping skips."""
    x, t, xt, tt = _data()
    tt = np.eye(10)[tt]
    if which == "x":
        xt = xt.copy()
        xt[7, 0, 2, 2] = np.nan
    else:
        tt[3, 1] = np.inf
    tr = cdl.Trainer(mlp(hidden=(8,), rng=0), cdl.optim.SGD(), epochs=1, verbose=False)
    with pytest.raises(ValueError, match=match):
        tr.fit(x, np.eye(10)[t], validation_data=(xt, tt))
    assert tr.history == {}


def test_nan_in_training_targets_is_named_not_blamed_on_divergence():
    """Issue 17: a NaN target gave a NaN loss, reported as 'the model diverged'."""
    x, t, _, _ = _data()
    t = np.eye(10)[t]
    t[42, 3] = np.nan
    tr = cdl.Trainer(mlp(hidden=(8,), rng=0), cdl.optim.SGD(), epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"Trainer.fit: t \(training targets\) of shape "
                                         r"\(300, 10\) has 1 NaN/Inf"):
        tr.fit(x, t)


def test_nan_targets_from_augment_name_the_batch():
    x, t, _, _ = _data()

    def augment(xb, tb, rng):
        tb = np.eye(10)[tb]
        tb[0, 0] = np.nan
        return xb, tb

    tr = cdl.Trainer(mlp(hidden=(8,), rng=0), cdl.optim.SGD(), epochs=1, verbose=False,
                     augment=augment)
    with pytest.raises(FloatingPointError, match=r"NaN or Inf in the targets at epoch 1, batch 1"):
        tr.fit(x, t)


def test_ctrl_c_stops_cleanly_runs_end_hooks_and_returns_the_history():
    """Issue 17: Ctrl-C mid-epoch ended fit with a traceback and no on_train_end."""
    calls = []

    class CtrlC(cdl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            if trainer.epoch == 3 and batch == 4:
                raise KeyboardInterrupt

        def on_epoch_end(self, trainer, epoch, logs):
            calls.append(("epoch_end", epoch))

        def on_train_end(self, trainer):
            calls.append(("train_end", trainer.epoch, trainer.interrupted))

    net, tr, h = _fit(epochs=10, callbacks=[CtrlC()])
    assert tr.interrupted and tr.epoch == 2
    assert h["epoch"] == [1, 2] and len(h["loss"]) == len(h["val_acc"]) == 2
    assert calls == [("epoch_end", 1), ("epoch_end", 2), ("train_end", 2, True)]
    x, t, xt, tt = _data()
    tr.callbacks = []
    tr.fit(x, t)  # a later fit starts again with the unfinished epoch, uninterrupted
    assert not tr.interrupted and tr.history["epoch"][2:] == list(range(3, 13))


def test_step_is_one_update():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    L = cdl.layers
    nets = [cdl.Sequential([L.Affine(4, 5, rng=np.random.default_rng(1)), L.ReLU(),
                            L.Affine(5, 3, rng=np.random.default_rng(2))],
                           loss=L.SoftmaxCrossEntropy()).astype(np.float64) for _ in range(2)]
    trainer = cdl.Trainer(nets[0], cdl.optim.SGD(lr=0.1), verbose=False)
    loss = trainer.step(x, t)
    ref = cdl.optim.SGD(lr=0.1)
    assert loss == nets[1].loss(x, t)
    nets[1].backward()
    ref.update(nets[1].params, nets[1].grads)
    for k, p in nets[1].params.items():
        np.testing.assert_array_equal(nets[0].params[k], p)
