"""The layer protocol every cdl layer follows.

    y  = layer.forward(x, train=True)   # caches what backward needs
    dx = layer.backward(dout)           # fills layer.grads, never modifies dout

``params`` and ``grads`` are dicts of name -> array with the same keys and
shapes. A layer reads its parameters from ``self.params`` at every call, so
optimizers update them in place and loaders may replace them. ``buffers``
holds state that is saved with a model but not trained (BatchNorm's running
statistics). ``trainable = False`` freezes a layer: containers leave its
parameters out of the ``params`` they hand to an optimizer.

``config()`` returns the constructor arguments (JSON values only), so that a
saved model can be rebuilt without executing anything from the file.

Stochastic layers (``_Stochastic``: Dropout, DropConnect, GaussianNoise, a
stochastic Binarize) draw fresh noise at every training forward. Inside
``with layer.hold_noise():`` they reuse the noise they drew last (when its
shape still fits), so repeated forwards are one deterministic function of x
and the parameters, as a numerical gradient check needs; containers pass
the hold on to their children.
"""
import abc
import contextlib

import numpy as np

from cdl import init as _init
from cdl._checks import check_float
from cdl.backend import kernels_for

_REGISTRY = {}


def registered_layers():
    """Layer classes by name, as ``cdl.load`` rebuilds them."""
    return dict(_REGISTRY)


class Layer(abc.ABC):
    """Base class: forward, backward, params, grads, buffers, config."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.trainable = True
        self._noise_held = False

    @abc.abstractmethod
    def forward(self, x, train=True):
        """Return the layer's output for x; cache what backward needs when train."""

    @abc.abstractmethod
    def backward(self, dout):
        """Return dL/dx for dout = dL/dy; fill self.grads."""

    def backward_params(self, dout):
        """Fill self.grads for dout = dL/dy without returning dL/dx, for a first layer whose
        input gradient nobody reads (as PyTorch skips it for inputs that do not require
        grad). Layers that can skip computing dx (Conv2D) override this."""
        self.backward(dout)

    def config(self):
        """Constructor keyword arguments, JSON-serialisable."""
        return {}

    def children(self):
        """Sub-layers of a container, in flat-name order (none for plain layers)."""
        return []

    @contextlib.contextmanager
    def hold_noise(self):
        """Within the block, this layer and its descendants reuse their last noise draw."""
        layers, stack = [], [self]
        while stack:
            layer = stack.pop()
            layers.append(layer)
            stack.extend(layer.children())
        before = [getattr(layer, "_noise_held", False) for layer in layers]
        for layer in layers:
            layer._noise_held = True
        try:
            yield self
        finally:
            for layer, held in zip(layers, before):
                layer._noise_held = held

    def _grad_target(self, K, key, shape, dtype):
        """The array grads[key] already is, when the gradient can be written into it (in a
        Sequential: its view of the flat gradient buffer, which then needs no copy, see
        ``cdl._flatgrad``), else a new one. Host arrays only (device arrays keep the copy)."""
        g = self.grads.get(key)
        if (type(g) is np.ndarray and type(self.params[key]) is np.ndarray
                and g.shape == shape and g.dtype == dtype and g.flags.c_contiguous):
            return g
        return K.empty(shape, dtype)

    def astype(self, dtype):
        """Cast params, grads and buffers to dtype (float32 or float64), in place."""
        dtype = np.dtype(dtype)
        for store in (self.params, self.grads, self.buffers):
            for k, v in store.items():
                store[k] = np.ascontiguousarray(v, dtype=dtype)
        return self

    def to_device(self):
        """Move this layer's params, grads and buffers to the GPU, in place in their dicts
        (a container's children move with ``Sequential.to_device``, which walks them)."""
        from cdl import cuda
        return self._move(cuda.to_device)

    def to_host(self):
        """Move this layer's params, grads and buffers back to NumPy arrays."""
        from cdl import cuda
        return self._move(cuda.to_host)

    def _move(self, fn):
        for store in (self.params, self.grads, self.buffers):
            for k, v in store.items():
                store[k] = fn(v)
        return self

    def _cached(self, value):
        """What forward cached for backward, or a clear error when it never ran."""
        if value is None:
            raise RuntimeError(f"{self.name}: backward called before forward(x, train=True)")
        return value

    def _check_dout(self, dout, shape):
        """dout as a float array of the forward output's shape, or a ValueError."""
        dout = check_float(self.name, dout, what="dout")
        if dout.shape != tuple(shape):
            raise ValueError(f"{self.name}: dout has shape {dout.shape}, "
                             f"but the forward output had shape {tuple(shape)}")
        return dout

    def _zero_grads(self):
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    @property
    def name(self):
        """The class name, used in error messages and in repr."""
        return type(self).__name__

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{self.name}({args})"


class _Stochastic(Layer):
    """Base of the layers that draw noise (Dropout, DropConnect, GaussianNoise, Binarize):
    the generator, and reuse of the last draw while held. (The underscore keeps this
    abstract base out of the registry of loadable layers.)"""

    def __init__(self, rng):
        super().__init__()
        # An int seed gets its own generator now, so its stream continues across calls;
        # None defers to the package generator at each draw, so cdl.seed() applies later.
        self._rng = None if rng is None else _init.get_rng(rng)
        self._noise = None

    def _draw(self, K, shape, dtype, sample):
        """sample(rng, out) into a new array on K's device, or the last draw when noise is
        held and it fits (same shape, dtype and device)."""
        last = self._noise
        if self._noise_held and last is not None and last.shape == tuple(shape) \
                and last.dtype == dtype and kernels_for(last) is K:
            return last
        self._noise = sample(_init.get_rng(self._rng), K.empty(tuple(shape), dtype))
        return self._noise


def compute_dtype(*arrays):
    """The dtype a layer computes in, given its operand arrays: float64 if any is, else
    float32."""
    return np.result_type(*[a.dtype for a in arrays])


def cast(K, a, dtype):
    """a in dtype: a itself when it is already, else a copy cast by the backend K (device
    arrays have no astype; on the CPU this is a.astype(dtype, copy=False))."""
    return a if a.dtype == dtype else K.copy(a, K.empty(a.shape, dtype))
