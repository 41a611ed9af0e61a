"""Dynamic loss scaling for float16 training (Micikevicius et al. 2018, sec. 3.2).

The loss is multiplied by a scale S before backward so that small gradients
survive float16's range; the weight gradients are unscaled in float32 and
checked, and S adapts: halved after a step whose gradients overflowed (the
step is skipped), doubled after a run of finite steps. ``cdl.precision``'s
MixedPrecision uses it; ``Trainer(..., precision="float16")`` makes one.
"""
import numpy as np

from cdl._checks import check_int
from cdl.backend import kernels_for


class LossScaler:
    """Dynamic loss scaling, with the semantics of PyTorch's GradScaler.

    scale            S (init_scale at first): the loss (so every gradient) is multiplied
                     by it before backward
    growth_factor    S *= growth_factor after growth_interval consecutive finite steps
    backoff_factor   S *= backoff_factor after a step with Inf/NaN gradients (skipped)
    growth_interval  the number of finite steps between growths

    ``unscale(grads)`` multiplies the gradients by 1/S in place and says whether they are
    all finite; ``update(finite)`` then adjusts S. ``steps`` and ``skipped`` count the
    steps seen and skipped. When S falls below 2^-24 (the smallest float16 above 0) no
    scale can help: FloatingPointError. A Trainer with precision="float16" holds one as
    ``trainer.scaler`` and as its last callback (so checkpoints carry its state).
    """

    MIN_SCALE = 2.0 ** -24

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000):
        for name, v, ok in (("init_scale", init_scale, lambda v: v > 0),
                            ("growth_factor", growth_factor, lambda v: v > 1),
                            ("backoff_factor", backoff_factor, lambda v: 0 < v < 1)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) \
                    or not ok(v):
                raise ValueError(f"LossScaler: bad {name} {v!r}")
        self.scale = float(init_scale)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = check_int("LossScaler", "growth_interval", growth_interval)
        self._growth_tracker = 0  # finite steps since S last changed
        self.steps = self.skipped = 0

    def unscale(self, grads):
        """grads (a dict of arrays) times 1/S, in place, in their dtype; True when all finite."""
        inv = 1.0 / self.scale
        finite = True
        for g in grads.values():
            K = kernels_for(g)
            K.scale(g, inv, g)
            finite = K.all_finite(g) and finite  # scale them all: no half-unscaled grads
        return finite

    def update(self, finite):
        """After a step: grow S after growth_interval finite steps, halve it on overflow."""
        self.steps += 1
        if finite:
            self._growth_tracker += 1
            if self._growth_tracker == self.growth_interval:
                self.scale *= self.growth_factor
                self._growth_tracker = 0
            return
        self.skipped += 1
        self._growth_tracker = 0
        self.scale *= self.backoff_factor
        if self.scale < self.MIN_SCALE:
            raise FloatingPointError(
                f"LossScaler: the gradients hold Inf or NaN at every scale (now {self.scale:g} "
                f"after {self.skipped} skipped steps); the model diverged or a layer "
                f"overflows float16 in its forward")

    # Checkpoints (cdl.checkpoint) save callbacks' state: the scaler is the trainer's last.
    def state_dict(self):
        """The scaler's state for checkpoints: scale, growth tracker and step counts."""
        return {"scale": self.scale, "growth_tracker": self._growth_tracker,
                "steps": self.steps, "skipped": self.skipped}

    def load_state_dict(self, state, model=None):
        """Restore ``state_dict()``'s values, checked (ValueError, nothing changed); model
        is unused (the callbacks' common signature)."""
        who = "LossScaler.load_state_dict"
        keys = {"scale", "growth_tracker", "steps", "skipped"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"{who}: expected a dict with {sorted(keys)}, got {state!r:.80}")
        scale = state["scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"{who}: scale must be a positive finite number, got {scale!r:.40}")
        tracker = check_int(who, "growth_tracker", state["growth_tracker"], minimum=0,
                            maximum=self.growth_interval - 1)
        steps = check_int(who, "steps", state["steps"], minimum=0)
        skipped = check_int(who, "skipped", state["skipped"], minimum=0, maximum=steps)
        self.scale, self._growth_tracker = float(scale), tracker
        self.steps, self.skipped = steps, skipped

    def __repr__(self):
        return (f"LossScaler(scale={self.scale:g}, growth_interval={self.growth_interval}, "
                f"skipped={self.skipped}/{self.steps})")


__all__ = ["LossScaler"]
