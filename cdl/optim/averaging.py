"""Averages of the parameters over training, swapped in for evaluation.

    ema = EMA(decay=0.999)
    Trainer(net, opt, callbacks=[ema]).fit(x, t, validation_data=(xv, tv))

After every update the callback folds the model's parameters into its
average (one fused kernel pass per array). Around each evaluation of the
Trainer it swaps the averages into the model and the live parameters back
afterwards, so history["val_acc"] measures the averaged model while training
continues from the live one. When training ends the averages stay in the
model (``finalize=False`` keeps the live parameters). Outside a Trainer:

    with ema.applied(net):
        acc = net.accuracy(x_test, t_test)

    PolyakAverage(start=1)   theta_bar = mean of the iterates since epoch ``start``
                             (Polyak & Juditsky 1992; Ruppert 1988)
    EMA(decay=0.999)         theta_bar <- d theta_bar + (1 - d) theta with
                             d = min(decay, (1 + n) / (10 + n)) after n updates
                             (the warm-up of TensorFlow's ExponentialMovingAverage,
                             so early iterates do not linger for 1/(1 - decay) steps)

Only trainable parameters are averaged; buffers (BatchNorm's running
statistics) are not. ``state_dict()`` (the averages and their count) goes
into Trainer checkpoints.
"""
import abc
import contextlib

from cdl._checks import is_device_array
from cdl.backend import kernels_for
from cdl.optim.base import _checked_slot, _on_device_of, check_count, check_hyper
from cdl.callbacks import Callback


class _ParameterAverage(Callback, abc.ABC):
    """Base: keeps ``average`` (name -> array) and ``n``, the number of iterates folded in."""

    def __init__(self, finalize=True):
        self.finalize = bool(finalize)
        self.average = None
        self.n = 0
        self._live = None

    @abc.abstractmethod
    def _beta(self):
        """Weight of the old average when the n-th iterate is folded in (n >= 1)."""

    def update(self, params):
        """Fold the current params into the average."""
        if self.average is None:
            self.average = {k: _copy(p) for k, p in params.items()}
        elif self.average.keys() != params.keys():
            raise ValueError(f"{type(self).__name__}: the model's parameters changed from "
                             f"{sorted(self.average)[:4]}... to {sorted(params)[:4]}...")
        self.n += 1
        beta = self._beta()
        for k, p in params.items():
            avg = self.average[k]
            if avg.shape != p.shape:
                raise ValueError(f"{type(self).__name__}: parameter {k!r} changed shape "
                                 f"from {avg.shape} to {p.shape}")
            if is_device_array(avg) != is_device_array(p):  # restored before to_device
                avg = self.average[k] = _on_device_of(p, avg)
            kernels_for(avg, p).ema_update(avg, p, beta)

    def swap_in(self, model):
        """Put the averages into the model, keeping the live parameters aside."""
        if self.average is None or self._live is not None:
            return
        params = model.params
        if params.keys() != self.average.keys():
            raise ValueError(f"{type(self).__name__}: the model's parameters "
                             f"{sorted(params)[:4]}... are not the averaged ones "
                             f"{sorted(self.average)[:4]}...")
        self._live = {k: _copy(p) for k, p in params.items()}
        for k, p in params.items():
            _assign(p, self.average[k])

    def swap_out(self, model):
        """Put the live parameters back."""
        if self._live is None:
            return
        for k, p in model.params.items():
            _assign(p, self._live[k])
        self._live = None

    @contextlib.contextmanager
    def applied(self, model):
        """Context in which model holds the averaged parameters."""
        self.swap_in(model)
        try:
            yield model
        finally:
            self.swap_out(model)

    def state_dict(self):
        """{"n", "average": {name: array} or None}, for checkpoints (the live arrays)."""
        return {"n": self.n, "average": None if self.average is None else dict(self.average)}

    def load_state_dict(self, state, model=None):
        """Restore ``state_dict()``'s values, checked (ValueError, nothing changed); with
        model, the averages must match its trainable parameters and go to their device."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict) or set(state) != {"n", "average"}:
            raise ValueError(f"{who}: expected a dict with n and average, got {state!r:.80}")
        n, average = check_count(who, "n", state["n"], minimum=0), state["average"]
        if average is not None:
            if not isinstance(average, dict):
                raise ValueError(f"{who}: average must be a dict of arrays")
            params = None if model is None else model.params
            if params is not None and set(average) != set(params):
                raise ValueError(f"{who}: averages of {sorted(average)[:4]}..., the model's "
                                 f"parameters are {sorted(params)[:4]}...")
            average = {k: _checked_slot(who, k, a, None if params is None else params[k],
                                        False) for k, a in average.items()}
        self.n, self.average, self._live = n, average, None

    def _averaging(self, trainer):
        return True

    def on_batch_end(self, trainer, batch, logs):
        if self._averaging(trainer):
            self.update(trainer.model.params)

    def on_eval_begin(self, trainer):
        self.swap_in(trainer.model)

    def on_eval_end(self, trainer):
        self.swap_out(trainer.model)

    def on_train_end(self, trainer):
        if self.finalize and self.average is not None:
            for k, p in trainer.model.params.items():
                _assign(p, self.average[k])


def _copy(p):
    """A copy of p on p's device."""
    K = kernels_for(p)
    return K.copy(p, K.empty_like(p))


def _assign(p, value):
    """p[...] = value in place, on their (common) device."""
    kernels_for(p, value).copy(value, p)


class EMA(_ParameterAverage):
    """Exponential moving average of the parameters (see the module docstring).

    decay is the weight of the old average once warmed up, in [0, 1);
    finalize=False leaves the live parameters in the model when training ends.
    """

    def __init__(self, decay=0.999, finalize=True):
        super().__init__(finalize)
        self.decay = check_hyper("EMA", "decay", decay, 0, 1)

    def _beta(self):
        return min(self.decay, self.n / (9.0 + self.n))

    def __repr__(self):
        return f"EMA(decay={self.decay}, finalize={self.finalize})"


class PolyakAverage(_ParameterAverage):
    """Polyak-Ruppert average: the running mean of every iterate from epoch ``start`` on.

    finalize=False leaves the live parameters in the model when training ends.
    """

    def __init__(self, start=1, finalize=True):
        super().__init__(finalize)
        self.start = check_count("PolyakAverage", "start", start)

    def _beta(self):
        return 1.0 - 1.0 / self.n

    def _averaging(self, trainer):
        return trainer.epoch >= self.start

    def __repr__(self):
        return f"PolyakAverage(start={self.start}, finalize={self.finalize})"

