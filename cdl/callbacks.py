"""Training callbacks for ``cdl.Trainer``: the protocol ``Callback`` and ``EarlyStopping``.

    stop = EarlyStopping("val_loss", patience=5)
    Trainer(net, opt, epochs=100, callbacks=[stop]).fit(x, t, validation_data=(xv, tv))
    stop.best_epoch, stop.best, stop.stopped_epoch

Learning-rate schedules and parameter averaging live in ``cdl.optim``.
"""
import math

import numpy as np

from cdl._checks import check_int


class Callback:
    """Hooks called by ``Trainer.fit``; override the ones you need."""

    def on_train_begin(self, trainer):
        """Before the first epoch."""

    def on_epoch_begin(self, trainer, epoch):
        """Before epoch ``epoch`` (1-based)."""

    def on_batch_end(self, trainer, batch, logs):
        """After a batch's update; logs has "loss"."""

    def on_eval_begin(self, trainer):
        """Before the end-of-epoch evaluation (e.g. to swap in averaged weights)."""

    def on_eval_end(self, trainer):
        """After the end-of-epoch evaluation, even when it raised."""

    def on_epoch_end(self, trainer, epoch, logs):
        """After evaluation; logs has this epoch's history entries."""

    def on_train_end(self, trainer):
        """After the last epoch (or an early stop)."""

    # A callback with state defines ``state_dict()`` (JSON values and arrays) and
    # ``load_state_dict(state, model=None)``; Trainer checkpoints save and restore it.


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    monitor      a key of the epoch logs: "val_loss" (default), "val_acc",
                 "loss" or "train_acc" ("val_*" need validation_data)
    patience     stop after this many epochs in a row without improvement
                 (Keras's meaning; 0 acts as 1: stop at the first one)
    restore_best put the model's state (parameters and buffers) of the best
                 epoch back when training ends, whether it stopped early or
                 ran out of epochs
    min_delta    an improvement must beat the best by more than this
    mode         "min", "max", or "auto": "max" for accuracies (keys with
                 "acc"), "min" otherwise

    A NaN or Inf value never counts as an improvement. The snapshot is taken
    at the end of the epoch, from the model as the Trainer leaves it; after
    Ctrl-C (``trainer.interrupted``) it is restored too. Each ``fit`` starts
    counting afresh, except the first one after ``load_state_dict`` (a
    Trainer checkpoint restores best, wait and the snapshot).
    """

    def __init__(self, monitor="val_loss", patience=5, restore_best=True, min_delta=0.0,
                 mode="auto"):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"EarlyStopping: monitor must be a log key such as 'val_loss', "
                             f"got {monitor!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float, np.number)) \
                or not 0 <= min_delta < math.inf:
            raise ValueError(f"EarlyStopping: min_delta must be a finite number >= 0, got "
                             f"{min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = check_int("EarlyStopping", "patience", patience, minimum=0)
        self.restore_best, self.min_delta = bool(restore_best), float(min_delta)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self._reset()

    def _reset(self):
        self.best = None
        self.best_epoch = None
        self.stopped_epoch = None
        self.wait = 0
        self._best_state = None
        self._resumed = False

    def _improved(self, value):
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, trainer):
        if self._resumed:  # restored from a checkpoint: continue counting
            self._resumed = False
            return
        self._reset()

    def state_dict(self):
        """{"best", "best_epoch", "stopped_epoch", "wait", "best_state"}, for checkpoints
        (best_state: the snapshot restore_best keeps, or None)."""
        return {"best": self.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "wait": self.wait,
                "best_state": self._best_state}

    def load_state_dict(self, state, model=None):
        """Restore ``state_dict()``'s values, checked (ValueError, nothing changed); the
        next ``fit`` continues from them instead of starting afresh. With model, the
        snapshot must match ``model.state()``'s names and shapes."""
        who = "EarlyStopping.load_state_dict"
        keys = {"best", "best_epoch", "stopped_epoch", "wait", "best_state"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"{who}: expected a dict with {sorted(keys)}, got {state!r:.80}")
        best = state["best"]
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))
                                 or not math.isfinite(best)):
            raise ValueError(f"{who}: best must be a finite number or None, got {best!r:.40}")
        epochs = [None if state[k] is None else check_int(who, k, state[k], minimum=1)
                  for k in ("best_epoch", "stopped_epoch")]
        wait = check_int(who, "wait", state["wait"], minimum=0)
        snapshot = state["best_state"]
        if snapshot is not None:
            mine = None if model is None else model.state()
            if not isinstance(snapshot, dict) or (mine is not None and set(snapshot) != set(mine)):
                raise ValueError(f"{who}: best_state does not match the model's state")
            for k, v in snapshot.items():
                if not isinstance(v, np.ndarray) or v.dtype.kind != "f" or \
                        (mine is not None and v.shape != mine[k].shape):
                    raise ValueError(f"{who}: best_state[{k!r:.60}] is not a float array of "
                                     f"the model's shape")
            snapshot = {k: v.copy() for k, v in snapshot.items()}
        self.best = None if best is None else float(best)
        self.best_epoch, self.stopped_epoch = epochs
        self.wait, self._best_state, self._resumed = wait, snapshot, True

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor not in logs:
            hint = " (pass validation_data to fit)" if self.monitor.startswith("val_") else ""
            raise ValueError(f"EarlyStopping: no {self.monitor!r} in the epoch logs "
                             f"{sorted(logs)}{hint}")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self._best_state = {k: v.copy() for k, v in trainer.model.state().items()}
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            trainer.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self, trainer):
        # after Ctrl-C the model is partway through an unfinished epoch: restore even the last
        if self.restore_best and self._best_state is not None and \
                (self.best_epoch != trainer.epoch or getattr(trainer, "interrupted", False)):
            trainer.model.load_state(self._best_state)

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"restore_best={self.restore_best}, min_delta={self.min_delta}, "
                f"mode={self.mode!r})")


__all__ = ["EarlyStopping"]
