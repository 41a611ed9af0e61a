"""The optimizer protocol: ``opt.update(params, grads)`` updates params in place.

params and grads are dicts of name -> array with the same keys and shapes
(a layer's dicts, or a model's flat "index.name" dicts). State is kept per
parameter name, created on first use.
"""
import abc

import numpy as np

from cdl._checks import _device_c_contiguous, is_device_array
from cdl.backend import kernels_for


def check_hyper(who, name, value, low=None, high=None, low_open=False, high_open=True):
    """value as a float within [low, high) (or the given openness), else ValueError."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: {name} must be a number, got {value!r}") from None
    ok = np.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        brackets = ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + \
                   (")" if high_open or high is None else "]")
        raise ValueError(f"{who}: {name} must be in {brackets}, got {value!r}")
    return value


def check_count(who, name, value, minimum=1):
    """value as an int >= minimum (bools and non-integers refused), else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class Optimizer(abc.ABC):
    """Base: validates the dicts, counts steps (t), hands each array to ``_step``."""

    def __init__(self, lr):
        self.lr = check_hyper(self.name, "lr", lr, low=0, low_open=True)
        self.t = 0
        self.state = {}

    @property
    def name(self):
        return type(self).__name__

    def update(self, params, grads):
        """One step over every parameter; params are updated in place."""
        if params.keys() != grads.keys():
            missing = sorted(set(params) - set(grads))
            extra = sorted(set(grads) - set(params))
            raise ValueError(f"{self.name}.update: params and grads keys differ "
                             f"(no grad for {missing}, no param for {extra})")
        for k, p in params.items():
            g = grads[k]
            if getattr(g, "shape", None) != p.shape:
                raise ValueError(f"{self.name}.update: grad {k!r} has shape "
                                 f"{getattr(g, 'shape', None)}, param has {p.shape}")
            contiguous = _device_c_contiguous(p) if is_device_array(p) else p.flags.c_contiguous
            if not contiguous or p.dtype.kind != "f":
                raise ValueError(f"{self.name}.update: param {k!r} must be a contiguous "
                                 f"float array, got {p.dtype} (contiguous={contiguous})")
        self.t += 1
        for k, p in params.items():
            K = kernels_for(p, grads[k])
            self._step(k, p, _grad_like(K, grads[k], p), K)

    def _slots(self, key, p, *names):
        """Per-parameter state arrays (zeros on first use, on p's device), checked against p."""
        st = self.state.get(key)
        if st is None:
            K = kernels_for(p)
            st = self.state[key] = {n: K.zeros_like(p) for n in names}
        elif st[names[0]].shape != p.shape:
            raise ValueError(f"{self.name}: parameter {key!r} changed shape from "
                             f"{st[names[0]].shape} to {p.shape}; make a new optimizer")
        return [st[n] for n in names]

    @abc.abstractmethod
    def _step(self, key, p, g, K):
        """Update p in place from g; K is the kernel namespace for p's device."""

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if k not in ("state", "t"))
        return f"{self.name}({args})"


def _grad_like(K, g, p):
    """g as a C-contiguous array of p's dtype on p's device (g itself when it is one)."""
    if not is_device_array(g):
        return np.ascontiguousarray(g, dtype=p.dtype)
    if g.dtype == p.dtype:
        return g  # the kernel refuses a non-contiguous device array: a copy is the caller's
    return K.copy(g, K.empty_like(p))
