"""EarlyStopping: patience, modes, restoring the best state, with and without a Trainer."""
import types

import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.callbacks import EarlyStopping


def small_net(rng=0):
    return cdl.Sequential([L.Affine(4, 8, rng=rng), L.BatchNorm(8), L.ReLU(), L.Affine(8, 3, rng=rng)],
                          loss=L.SoftmaxCrossEntropy())


def drive(cb, values, key="val_loss"):
    """Feed cb a sequence of epoch values; the model's first weight records the epoch."""
    net = small_net()
    trainer = types.SimpleNamespace(model=net, stop_training=False, epoch=0)
    cb.on_train_begin(trainer)
    for epoch, v in enumerate(values, start=1):
        trainer.epoch = epoch
        net.params["0.W"][0, 0] = epoch
        net.layers[1].running_mean[0] = 10 * epoch
        cb.on_epoch_end(trainer, epoch, {key: v})
        if trainer.stop_training:
            break
    cb.on_train_end(trainer)
    return trainer, net


def test_stops_after_patience_epochs_without_improvement_and_restores_best():
    cb = EarlyStopping("val_loss", patience=3)
    trainer, net = drive(cb, [1.0, 0.8, 0.9, 0.85, 0.95, 0.1, 0.1])
    assert cb.stopped_epoch == 5 and trainer.epoch == 5
    assert cb.best_epoch == 2 and cb.best == 0.8
    assert net.params["0.W"][0, 0] == 2
    assert net.layers[1].running_mean[0] == 20  # buffers come back too


def test_improvement_resets_the_count_and_min_delta_matters():
    cb = EarlyStopping("val_loss", patience=2)
    drive(cb, [1.0, 1.1, 0.9, 1.0, 0.8, 0.85, 0.9, 0.1])
    assert cb.best_epoch == 5 and cb.stopped_epoch == 7
    cb = EarlyStopping("val_loss", patience=2, min_delta=0.15)
    drive(cb, [1.0, 0.9, 0.88, 0.7])
    assert cb.best_epoch == 1 and cb.stopped_epoch == 3


def test_accuracy_is_maximised_and_nan_never_improves():
    cb = EarlyStopping("val_acc", patience=1)
    assert cb.mode == "max"
    drive(cb, [0.5, 0.7, 0.6], key="val_acc")
    assert cb.best == 0.7 and cb.stopped_epoch == 3
    cb = EarlyStopping("loss", patience=1)
    drive(cb, [1.0, float("nan")], key="loss")
    assert cb.best == 1.0 and cb.stopped_epoch == 2


def test_no_restore_keeps_the_last_state():
    cb = EarlyStopping(patience=1, restore_best=False)
    _, net = drive(cb, [1.0, 2.0])
    assert net.params["0.W"][0, 0] == 2


def test_with_trainer_restores_the_best_validation_state(rng):
    """Random validation labels: val loss rises as the net fits its training set."""
    x = rng.standard_normal((60, 4)).astype(np.float32)
    t = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    xv = rng.standard_normal((40, 4)).astype(np.float32)
    tv = rng.integers(0, 3, 40)
    net = small_net()
    stop = EarlyStopping("val_loss", patience=2)
    trainer = cdl.Trainer(net, cdl.optim.Adam(lr=0.05), batch_size=10, epochs=60, seed=0,
                          callbacks=[stop], verbose=False)
    hist = trainer.fit(x, t, validation_data=(xv, tv))
    assert stop.stopped_epoch is not None and len(hist["val_loss"]) == stop.stopped_epoch < 60
    assert stop.best == min(hist["val_loss"])
    np.testing.assert_allclose(trainer.evaluate(x, t, (xv, tv))["val_loss"], stop.best, rtol=1e-6)


def test_missing_monitor_names_the_keys(rng):
    net = small_net()
    trainer = cdl.Trainer(net, cdl.optim.SGD(), epochs=1, callbacks=[EarlyStopping()], verbose=False)
    with pytest.raises(ValueError, match=r"no 'val_loss' in the epoch logs .*pass validation_data"):
        trainer.fit(rng.standard_normal((4, 4)).astype(np.float32), np.array([0, 1, 2, 0]))


@pytest.mark.parametrize("kwargs,match", [
    ({"monitor": ""}, "monitor must be a log key"),
    ({"patience": -1}, "patience must be an int >= 0"),
    ({"min_delta": -0.1}, "min_delta must be a finite number >= 0"),
    ({"mode": "up"}, "mode must be"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


def test_ctrl_c_mid_epoch_restores_the_best_state_even_of_the_last_epoch(rng):
    """After Ctrl-C the model is partway through an unfinished epoch; the best one comes back."""
    x = rng.standard_normal((60, 4)).astype(np.float32)
    t = (x[:, 0] > 0).astype(np.int64)
    stop = EarlyStopping("loss", patience=100)
    seen = {}

    class CtrlC(cdl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen[epoch] = {k: v.copy() for k, v in trainer.model.state().items()}

        def on_batch_end(self, trainer, batch, logs):
            if trainer.epoch == 3 and batch == 3:
                raise KeyboardInterrupt

    net = small_net()
    trainer = cdl.Trainer(net, cdl.optim.Adam(lr=0.05), batch_size=10, epochs=20, seed=0,
                          callbacks=[stop, CtrlC()], verbose=False)
    hist = trainer.fit(x, t)
    assert trainer.interrupted and len(hist["loss"]) == 2 and trainer.epoch == 2
    assert stop.best_epoch == 2  # the last finished epoch: the case a plain end skips
    best = seen[stop.best_epoch]
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, best[k])


def test_patience_takes_numpy_ints_and_refuses_floats():
    assert EarlyStopping(patience=np.int64(3)).patience == 3
    with pytest.raises(ValueError, match=r"EarlyStopping: patience must be an int >= 0, got 2\.0"):
        EarlyStopping(patience=2.0)
