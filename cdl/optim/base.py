"""The optimizer protocol: ``opt.update(params, grads)`` updates params in place.

params and grads are dicts of name -> array with the same keys and shapes
(a layer's dicts, or a model's flat "index.name" dicts). State is kept per
parameter name, created on first use, on the device of the parameter.

Per-parameter learning rates for fine-tuning: ``lr_multipliers`` maps flat
layer names ("0", "2.1") or parameter names ("0.W") to a factor; a
parameter's rate is ``lr * factor`` of the longest key that is its name or a
prefix of it ending at a dot, "" standing for every parameter (factor 1
where no key matches). Schedules set ``lr``, so they scale every multiplied
rate alike:

    optim.Adam(lr=1e-3, lr_multipliers={"": 0.1, "7": 1.0})  # body 1e-4, head (layer 7) 1e-3

A key that matches no parameter of the first update is a ValueError (a typo,
or a layer frozen with ``trainable = False``, whose parameters optimizers
never see).

``state_dict()`` / ``load_state_dict(state, params=None)`` give and take the
optimizer's state (lr, step count t, the per-parameter arrays, e.g. Adam's m
and v) for checkpoints (``cdl.checkpoint``); the other hyperparameters are
the constructor's.
"""
import abc

import numpy as np

from cdl._checks import device_c_contiguous, is_device_array
from cdl.backend import kernels_for


def check_hyper(who, name, value, low=None, high=None, low_open=False, high_open=True):
    """value as a float within [low, high) (low_open and high_open choose each end's
    openness; None: unbounded), else a ValueError naming who and the argument name.

    A number, not text or a bool: float("0.1") and float(True) would pass silently."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"{who}: {name} must be a number, got {value!r}")
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
    """value as an int >= minimum (bools and non-integers refused), else a ValueError
    naming who and the argument name."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class Optimizer(abc.ABC):
    """Base: validates the dicts, counts steps (t), hands each array to ``_step``.

    lr is the learning rate (> 0); lr_multipliers maps layer or parameter
    names to factors of it (see the module docstring).
    """

    SLOTS = ()         # names of the per-parameter state arrays, in _slots order
    NONNEGATIVE = ()   # the slots that accumulate squares (a negative one is corrupt)

    def __init__(self, lr, lr_multipliers=None):
        self.lr = check_hyper(self.name, "lr", lr, low=0, low_open=True)
        self.lr_multipliers = _multipliers(self.name, lr_multipliers)
        self.t = 0
        self.state = {}

    @property
    def name(self):
        """The class name, used in error messages."""
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
            contiguous = device_c_contiguous(p) if is_device_array(p) else p.flags.c_contiguous
            if not contiguous or p.dtype.kind != "f":
                raise ValueError(f"{self.name}.update: param {k!r} must be a contiguous "
                                 f"float array, got {p.dtype} (contiguous={contiguous})")
            if not is_device_array(p) and not p.flags.writeable:
                raise ValueError(f"{self.name}.update: param {k!r} is read-only (the update "
                                 f"is in place; pass a writeable array)")
            if g.dtype.kind not in "iuf":  # a complex grad would lose its imaginary part
                raise ValueError(f"{self.name}.update: grad {k!r} must be a real array, got "
                                 f"{g.dtype}")
        if self.lr_multipliers and self.t == 0:
            self._check_multipliers(params)
        self.t += 1
        for k, p in params.items():
            K = kernels_for(p, grads[k])
            lr = self.lr * self.lr_factor(k) if self.lr_multipliers else self.lr
            self._step(k, p, _grad_like(K, grads[k], p), K, lr)

    def lr_factor(self, key):
        """The multiplier of parameter ``key``: that of the longest matching key, else 1."""
        best, factor = -1, 1.0
        for prefix, f in self.lr_multipliers.items():
            if (prefix == "" or key == prefix or key.startswith(prefix + ".")) \
                    and len(prefix) > best:
                best, factor = len(prefix), f
        return factor

    def _check_multipliers(self, params):
        """ValueError for a key that names no parameter (checked at the first update)."""
        unused = [p for p in self.lr_multipliers
                  if p and not any(k == p or k.startswith(p + ".") for k in params)]
        if unused:
            raise ValueError(f"{self.name}: lr_multipliers key {unused[0]!r} matches no "
                             f"parameter (names are like {sorted(params)[:3]}; frozen "
                             f"layers' parameters are not handed to optimizers)")

    def _slots(self, key, p, *names):
        """Per-parameter state arrays (zeros on first use, on p's device), checked against p;
        state restored on the other device (a checkpoint's, before to_device) moves to p's."""
        st = self.state.get(key)
        if st is None:
            K = kernels_for(p)
            st = self.state[key] = {n: K.zeros_like(p) for n in names}
        elif st[names[0]].shape != p.shape:
            raise ValueError(f"{self.name}: parameter {key!r} changed shape from "
                             f"{st[names[0]].shape} to {p.shape}; make a new optimizer")
        elif is_device_array(st[names[0]]) != is_device_array(p):
            st.update({n: _on_device_of(p, st[n]) for n in names})
        return [st[n] for n in names]

    @abc.abstractmethod
    def _step(self, key, p, g, K, lr):
        """Update p in place from g with learning rate lr (``self.lr`` times the key's
        multiplier); K is the kernel namespace for p's device."""

    # -- state, for checkpoints ------------------------------------------------------
    def state_dict(self):
        """{"type", "lr", "t", "slots": {param name: {slot: array}}}; the arrays are the live
        ones (on their device): copy them before changing anything."""
        return {"type": self.name, "lr": self.lr, "t": self.t,
                "slots": {k: dict(st) for k, st in self.state.items()}}

    def load_state_dict(self, state, params=None):
        """Restore what ``state_dict`` gave, after checking all of it (ValueError, and
        nothing changed, when anything is off). With params (the dict ``update`` gets),
        each slot must match its parameter's shape and dtype and goes to its device."""
        lr, t, slots = self._checked_state(state, params)
        self.lr, self.t, self.state = lr, t, slots

    def _checked_state(self, state, params):
        who = f"{self.name}.load_state_dict"
        if not isinstance(state, dict) or set(state) != {"type", "lr", "t", "slots"}:
            raise ValueError(f"{who}: expected a dict with type, lr, t, slots, got "
                             f"{sorted(state) if isinstance(state, dict) else type(state)}")
        if state["type"] != self.name:
            raise ValueError(f"{who}: the state is of a {state['type']!r:.40}, not a "
                             f"{self.name}")
        lr = check_hyper(who, "lr", state["lr"], low=0, low_open=True)
        t = check_count(who, "t", state["t"], minimum=0)
        if not isinstance(state["slots"], dict):
            raise ValueError(f"{who}: slots must be a dict")
        slots = {}
        for key, st in state["slots"].items():
            if not isinstance(st, dict) or set(st) != set(self.SLOTS):
                raise ValueError(f"{who}: slots of {key!r:.80} must be {list(self.SLOTS)}, "
                                 f"got {sorted(st) if isinstance(st, dict) else type(st)}")
            p = None
            if params is not None:
                if key not in params:
                    raise ValueError(f"{who}: state for {key!r:.80}, which is not a "
                                     f"parameter (have {sorted(params)[:5]})")
                p = params[key]
            slots[key] = {n: _checked_slot(who, f"{key}/{n}", a, p, n in self.NONNEGATIVE)
                          for n, a in st.items()}
        return lr, t, slots

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if k not in ("state", "t") and not k.startswith("_")
                         and not (k == "lr_multipliers" and not v))
        return f"{self.name}({args})"


def _multipliers(who, value):
    """lr_multipliers as {key: factor >= 0}, keys flat names without a trailing dot."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{who}: lr_multipliers must be a dict of flat name -> factor, got "
                         f"{type(value).__name__}")
    out = {}
    for k, f in value.items():
        if not isinstance(k, str):
            raise ValueError(f"{who}: lr_multipliers keys are flat layer or parameter names "
                             f"such as '0' or '2.1.W' ('' for all), got {k!r}")
        out[k.rstrip(".")] = check_hyper(who, f"lr_multipliers[{k!r}]", f, low=0)
    return out


def _checked_slot(who, name, a, p, nonnegative):
    """A checked copy of slot array a: float, finite (>= 0 for accumulated squares), and,
    with parameter p, of p's shape and dtype, on p's device."""
    from cdl import cuda
    host = cuda.to_host(a)
    if not isinstance(host, np.ndarray) or host.dtype.kind != "f":
        raise ValueError(f"{who}: slot {name!r:.80} must be a float array, got "
                         f"{getattr(host, 'dtype', type(host).__name__)}")
    if p is not None and (host.shape != p.shape or host.dtype != p.dtype):
        raise ValueError(f"{who}: slot {name!r:.80} is {host.dtype} {host.shape}, its "
                         f"parameter {p.dtype} {p.shape}")
    if not np.isfinite(host).all() or (nonnegative and (host < 0).any()):
        raise ValueError(f"{who}: slot {name!r:.80} holds "
                         f"{'NaN or Inf' if not np.isfinite(host).all() else 'negative values'}")
    host = np.array(host, order="C")  # a copy: the caller's arrays stay theirs
    return host if p is None else _on_device_of(p, host)


def _on_device_of(p, a):
    """a (a state array) on p's device: moved there when it lives on the other one."""
    from cdl import cuda
    if is_device_array(p):
        return cuda.to_device(a)
    return cuda.to_host(a)


def _grad_like(K, g, p):
    """g as a C-contiguous array of p's dtype on p's device (g itself when it is one)."""
    if not is_device_array(g):
        return np.ascontiguousarray(g, dtype=p.dtype)
    if g.dtype == p.dtype:
        return g  # the kernel refuses a non-contiguous device array: a copy is the caller's
    return K.copy(g, K.empty_like(p))
