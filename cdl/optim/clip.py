"""Gradient clipping, by global norm and element-wise by value, in place.

    norm = clip_grad_norm(net.grads, max_norm=5.0)   # returns the norm before clipping
    clip_grad_value(net.grads, 1.0)

or wrapped around any optimizer, so ``Trainer`` clips before every update:

    opt = GradClip(optim.Momentum(lr=0.1), max_norm=5.0)

Global norm: ||g|| = sqrt(sum over all arrays of sum g*g); if ||g|| > max_norm
every array is scaled by max_norm / ||g|| (the direction is kept; Pascanu,
Mikolov & Bengio 2013). By value: each entry is clipped to [-v, v].
"""
import math

import numpy as np

from cdl._checks import device_c_contiguous, is_device_array
from cdl.backend import kernels_for
from cdl.optim.base import check_hyper


def _check_grads(who, grads):
    for k, g in grads.items():
        device = is_device_array(g)
        if not (device or isinstance(g, np.ndarray)) or g.dtype not in (np.float32, np.float64):
            raise ValueError(f"{who}: grad {k!r} must be a float32/float64 array, got "
                             f"{getattr(g, 'dtype', type(g).__name__)}")
        if device and not device_c_contiguous(g):
            raise ValueError(f"{who}: grad {k!r} on the GPU must be C-contiguous")
        if not device and not g.flags.writeable:
            raise ValueError(f"{who}: grad {k!r} is read-only; clipping works in place")


def global_norm(grads):
    """sqrt(sum of g*g over every array of the dict grads): each array's sum of squares
    (a kernel on the array's device), added up in Python floats."""
    total = 0.0
    for g in grads.values():
        total += kernels_for(g).sum_squares(g)
    return math.sqrt(total)


def clip_grad_norm(grads, max_norm):
    """Scale every array of the dict grads by max_norm / ||g|| when their global norm
    ||g|| exceeds max_norm, in place; returns ||g|| before clipping."""
    max_norm = check_hyper("clip_grad_norm", "max_norm", max_norm, 0, low_open=True)
    _check_grads("clip_grad_norm", grads)
    norm = global_norm(grads)
    if not math.isfinite(norm):
        raise FloatingPointError(f"clip_grad_norm: the gradient norm is {norm}; the model "
                                 f"diverged before clipping")
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            kernels_for(g).scale(g, scale, g)
    return norm


def clip_grad_value(grads, max_value):
    """Clip every entry of the arrays of the dict grads to [-max_value, max_value], in
    place."""
    v = check_hyper("clip_grad_value", "max_value", max_value, 0, low_open=True)
    _check_grads("clip_grad_value", grads)
    for g in grads.values():
        kernels_for(g).clip_by_value(g, v)


class GradClip:
    """An optimizer that clips the gradients (by value, then by global norm) before
    handing them to the optimizer it wraps. ``lr`` and every other attribute are the
    wrapped optimizer's, so schedules work through it.

    max_norm bounds the global norm (``clip_grad_norm``), max_value every entry
    (``clip_grad_value``); give either or both. ``last_norm`` is the norm
    before the last clipping.
    """

    def __init__(self, optimizer, max_norm=None, max_value=None):
        if not callable(getattr(optimizer, "update", None)):
            raise ValueError(f"GradClip: wraps an optimizer with update(params, grads), got "
                             f"{type(optimizer).__name__}")
        if max_norm is None and max_value is None:
            raise ValueError("GradClip: give max_norm, max_value or both")
        self.optimizer = optimizer
        self.max_norm = None if max_norm is None else \
            check_hyper("GradClip", "max_norm", max_norm, 0, low_open=True)
        self.max_value = None if max_value is None else \
            check_hyper("GradClip", "max_value", max_value, 0, low_open=True)
        self.last_norm = None

    def update(self, params, grads):
        """Clip grads in place, then ``optimizer.update(params, grads)``."""
        if self.max_value is not None:
            clip_grad_value(grads, self.max_value)
        if self.max_norm is not None:
            self.last_norm = clip_grad_norm(grads, self.max_norm)
        self.optimizer.update(params, grads)

    @property
    def lr(self):
        """The wrapped optimizer's learning rate (setting it sets theirs)."""
        return self.optimizer.lr

    @lr.setter
    def lr(self, value):
        self.optimizer.lr = value

    def __getattr__(self, name):
        # Only reached for names GradClip lacks: t, state, momentum, ... of the wrapped one.
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self):
        return f"GradClip({self.optimizer!r}, max_norm={self.max_norm}, " \
               f"max_value={self.max_value})"
