"""Learning-rate schedules: callbacks that set ``trainer.optimizer.lr`` as training goes.

    Trainer(net, optim.Momentum(lr=0.1), callbacks=[CosineLR(total=30)]).fit(x, t)

Each schedule is a function of a step count s and the optimizer's initial
lr (lr0, read when training begins); ``per="epoch"`` counts epochs
(s = epoch - 1, lr set before each epoch), ``per="batch"`` counts updates
(s = number of updates so far, lr set before each one). ``lr_at(s, lr0)``
gives the same values outside a Trainer. The lr each epoch starts with is
logged in ``trainer.history["lr"]``. The optimizer's ``lr_multipliers``
scale the lr a schedule sets, parameter by parameter. ``state_dict()``
(lr0 and the update count) goes into Trainer checkpoints, so a resumed run
continues the schedule where it stopped.

    StepLR(step, gamma=0.1)          lr0 * gamma^floor(s / step)
    ExponentialLR(gamma)             lr0 * gamma^s
    CosineLR(total, lr_min=0)        lr_min + (lr0 - lr_min) (1 + cos(pi min(s, total) / total)) / 2
                                     (Loshchilov & Hutter 2017, without restarts)
    LinearWarmup(warmup, start=0.1, after=None, scale=1)
                                     k lr0 (start + (1 - start) s / warmup) for s < warmup,
                                     then after.lr_at(s - warmup, k lr0) (or k lr0), k = scale
                                     (Goyal et al. 2017)

Large minibatches (Goyal et al. 2017, "linear scaling rule"): with k times
the batch (k ranks of ``cdl.distributed``, each with the single-process
batch), multiply the learning rate by k and reach it gradually, from the
single-process rate, over the first epochs' updates:

    LinearWarmup(warmup=5 * batches_per_epoch, start=1 / k, scale=k, after=CosineLR(...))
"""
import abc
import math

from cdl.optim.base import check_count, check_hyper
from cdl.callbacks import Callback


class LRSchedule(Callback, abc.ABC):
    """Base: subclasses define ``lr_at(step, lr0)``.

    per="epoch": the step s counts epochs and the rate is set as each epoch
    begins; per="batch": s counts updates and the rate is set after each
    batch.
    """

    def __init__(self, per="epoch"):
        if per not in ("epoch", "batch"):
            raise ValueError(f"{type(self).__name__}: per must be 'epoch' or 'batch', "
                             f"got {per!r}")
        self.per = per
        self.lr0 = None
        self.steps = 0  # updates so far, for per="batch"
        self._epoch_lr = None

    @abc.abstractmethod
    def lr_at(self, step, lr0):
        """The learning rate at step (0-based) for initial rate lr0."""

    def _set(self, trainer, step):
        trainer.optimizer.lr = self.lr_at(step, self.lr0)

    def on_train_begin(self, trainer):
        if self.lr0 is None:
            self.lr0 = trainer.optimizer.lr
        if self.per == "batch":
            self._set(trainer, self.steps)

    def on_epoch_begin(self, trainer, epoch):
        if self.per == "epoch":
            self._set(trainer, epoch - 1)
        self._epoch_lr = trainer.optimizer.lr

    def on_batch_end(self, trainer, batch, logs):
        if self.per == "batch":
            self.steps += 1
            self._set(trainer, self.steps)

    def on_epoch_end(self, trainer, epoch, logs):
        trainer.history.setdefault("lr", []).append(self._epoch_lr)

    def state_dict(self):
        """The schedule's position, for checkpoints: {"lr0", "steps"} (the rest is its
        constructor's); the epoch count is the Trainer's."""
        return {"lr0": self.lr0, "steps": self.steps}

    def load_state_dict(self, state, model=None):
        """Restore ``state_dict()``'s values, checked (ValueError, nothing changed)."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict) or set(state) != {"lr0", "steps"}:
            raise ValueError(f"{who}: expected a dict with lr0 and steps, got {state!r:.80}")
        lr0 = state["lr0"]
        if lr0 is not None:
            lr0 = check_hyper(who, "lr0", lr0, 0, low_open=True)
        self.lr0, self.steps = lr0, check_count(who, "steps", state["steps"], minimum=0)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if k not in ("lr0", "steps", "_epoch_lr"))
        return f"{type(self).__name__}({args})"


class StepLR(LRSchedule):
    """lr0 * gamma^floor(s / step): divide by 1/gamma every ``step`` epochs (or batches).

    per: "epoch" or "batch", what s counts (see LRSchedule).
    """

    def __init__(self, step, gamma=0.1, per="epoch"):
        super().__init__(per)
        self.step = check_count("StepLR", "step", step)
        self.gamma = check_hyper("StepLR", "gamma", gamma, 0, 1, low_open=True,
                                 high_open=False)

    def lr_at(self, step, lr0):
        return lr0 * self.gamma ** (step // self.step)


class ExponentialLR(LRSchedule):
    """lr0 * gamma^s; per: "epoch" or "batch", what s counts (see LRSchedule)."""

    def __init__(self, gamma, per="epoch"):
        super().__init__(per)
        self.gamma = check_hyper("ExponentialLR", "gamma", gamma, 0, 1, low_open=True,
                                 high_open=False)

    def lr_at(self, step, lr0):
        return lr0 * self.gamma ** step


class CosineLR(LRSchedule):
    """lr_min + (lr0 - lr_min) (1 + cos(pi s / total)) / 2, then lr_min after ``total`` steps.

    per: "epoch" or "batch", what s counts (see LRSchedule).
    """

    def __init__(self, total, lr_min=0.0, per="epoch"):
        super().__init__(per)
        self.total = check_count("CosineLR", "total", total)
        self.lr_min = check_hyper("CosineLR", "lr_min", lr_min, 0)

    def lr_at(self, step, lr0):
        s = min(step, self.total)
        return self.lr_min + (lr0 - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * s / self.total))


class LinearWarmup(LRSchedule):
    """Linear ramp from start * lr to lr over ``warmup`` steps, then ``after`` (a schedule
    evaluated from 0 at the end of the warm-up, from lr) or a constant lr, where lr is
    ``scale`` * lr0: the linear scaling rule for a batch ``scale`` times larger.

    per: "batch" (default) or "epoch", what the steps count (see LRSchedule).
    """

    def __init__(self, warmup, start=0.1, after=None, per="batch", scale=1.0):
        super().__init__(per)
        self.warmup = check_count("LinearWarmup", "warmup", warmup)
        self.start = check_hyper("LinearWarmup", "start", start, 0, 1, high_open=False)
        if after is not None and not isinstance(after, LRSchedule):
            raise ValueError(f"LinearWarmup: after must be an LRSchedule, got {after!r}")
        self.after = after
        self.scale = check_hyper("LinearWarmup", "scale", scale, 0, low_open=True)

    def lr_at(self, step, lr0):
        lr0 = lr0 * self.scale
        if step < self.warmup:
            return lr0 * (self.start + (1.0 - self.start) * step / self.warmup)
        return lr0 if self.after is None else self.after.lr_at(step - self.warmup, lr0)
