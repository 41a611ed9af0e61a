"""Stochastic regularizers: Dropout, DropConnect and GaussianNoise.

Each draws its noise from a ``numpy.random.Generator``: the ``rng`` given to
the constructor (a Generator, or an int seed for a private one) or, by
default, cdl's package generator at the time of the call (``cdl.seed(s)``
makes a run reproducible). Noise is drawn only in training forwards;
inference is deterministic. Inside ``layer.hold_noise()`` a layer reuses
its last draw (see cdl.layers.base), which is how gradient checks see one
fixed function.

The noise is drawn by kernels (cdl.kernels.dropout) on the device of the
data: on the CPU from the generator itself, on the GPU from a seed drawn
from it (a seeded run repeats itself on its device; the GPU's masks are not
the CPU's).
"""
import numpy as np

from cdl._checks import check_float
from cdl.backend import kernels_for
from cdl.layers.base import Layer, _Stochastic
from cdl.layers.conv import Conv2D
from cdl.layers.dense import Affine


def _ratio(who, ratio):
    if isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, (int, float, np.number)) \
            or not 0.0 <= float(ratio) < 1.0:
        raise ValueError(f"{who}: ratio must be a number in [0, 1), got {ratio!r}")
    return float(ratio)


def _inverted_mask(K, ratio):
    """Sampler of keep-masks scaled by 1/(1 - ratio): E[mask] = 1."""
    return lambda rng, out: K.dropout_mask(rng, ratio, out)


def _masked(K, a, mask):
    """a * mask in a new array of their common dtype, on their device."""
    return K.apply_mask(a, mask, K.empty(a.shape, np.result_type(a.dtype, mask.dtype)))


class Dropout(_Stochastic):
    """Inverted dropout. x (N, ...) -> y, same shape (Srivastava et al. 2014).

    Training: each activation is kept with probability 1 - ratio and scaled
    by 1/(1 - ratio), so y = x * mask with E[y] = x; inference is the
    identity (no rescaling needed). Backward multiplies dout by the same
    mask. ratio in [0, 1). rng draws the masks (see the module docstring).
    """

    def __init__(self, ratio=0.5, rng=None):
        super().__init__(rng)
        self.ratio = _ratio("Dropout", ratio)
        self._mask = None

    def config(self):
        return {"ratio": self.ratio}

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(1, 8))
        if not train:
            return x
        K = kernels_for(x)
        self._mask = self._draw(K, x.shape, x.dtype, _inverted_mask(K, self.ratio))
        return _masked(K, x, self._mask)

    def backward(self, dout):
        mask = self._cached(self._mask)
        dout = self._check_dout(dout, mask.shape)
        return _masked(kernels_for(dout, mask), dout, mask)


class GaussianNoise(_Stochastic):
    """Additive Gaussian noise. x (N, ...) -> y = x + std * e, e ~ N(0, 1), in training only.

    Inference is the identity; dL/dx = dL/dy (the noise does not depend on
    x). A regularizer for hidden activations or inputs (Bishop 1995 shows
    input noise acts like Tikhonov regularization). std >= 0. rng draws the
    noise (see the module docstring).
    """

    def __init__(self, std=0.1, rng=None):
        super().__init__(rng)
        if isinstance(std, (bool, np.bool_)) or not isinstance(std, (int, float, np.number)) \
                or not 0.0 <= float(std) < np.inf:
            raise ValueError(f"GaussianNoise: std must be a finite number >= 0, got {std!r}")
        self.std = float(std)
        self._shape = None

    def config(self):
        return {"std": self.std}

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(1, 8))
        if not train:
            return x
        self._shape = x.shape
        std = self.std
        K = kernels_for(x)
        noise = self._draw(K, x.shape, x.dtype, lambda rng, out: K.gaussian_noise(rng, std, out))
        return K.add(x, noise, K.empty_like(x))

    def backward(self, dout):
        dout = self._check_dout(dout, self._cached(self._shape))
        K = kernels_for(dout)
        return K.copy(dout, K.empty_like(dout))


class DropConnect(_Stochastic):
    """DropConnect around an Affine or Conv2D: drops weights, not outputs (Wan et al. 2013).

    Training: a fresh keep-mask M (keep probability 1 - ratio) on the weight
    W, y = layer(x) computed with W * M / (1 - ratio); the bias is never
    dropped. Inference uses the full W — the inverted scaling makes
    E[W * M / (1 - ratio)] = W, as Dropout does for activations (rather
    than the paper's Gaussian moment matching at inference). Backward:
    dL/dW = (dL/dW_masked) * M / (1 - ratio).

    The wrapper shares the wrapped layer's ``params``, ``grads`` and
    ``buffers`` dicts, so in a Sequential the weights keep plain flat names
    ("3.W", "3.b" for a DropConnect at index 3) and optimizers and
    save/load see them as they would the bare layer. ``config()`` nests the
    wrapped layer's spec; ``from_config`` rebuilds it. ``DropConnect(layer,
    ratio)`` and ``DropConnect(ratio, layer)`` are the same. rng draws the
    masks (see the module docstring).
    """

    def __init__(self, layer, ratio=0.5, rng=None):
        super().__init__(rng)
        if isinstance(ratio, Layer) and not isinstance(layer, Layer):
            layer, ratio = ratio, layer  # DESIGN.md writes DropConnect(ratio): take (ratio, layer)
        if type(layer) not in (Affine, Conv2D):
            raise ValueError(f"DropConnect: wraps an Affine or a Conv2D layer, got "
                             f"{type(layer).__name__}")
        self.layer = layer
        self.ratio = _ratio("DropConnect", ratio)
        self.params, self.grads, self.buffers = layer.params, layer.grads, layer.buffers
        self._W = None

    def config(self):
        return {"layer": {"type": type(self.layer).__name__, "config": self.layer.config()},
                "ratio": self.ratio}

    @classmethod
    def from_config(cls, config, build):
        """The layer that ``config()`` describes; build(spec, where) makes the wrapped layer
        from its nested spec (the model loader passes its own builder)."""
        if set(config) != {"layer", "ratio"}:
            raise ValueError("DropConnect config must be {'layer': {...}, 'ratio': r}")
        return cls(build(config["layer"], "DropConnect layer"), ratio=config["ratio"])

    def astype(self, dtype):
        self.layer.astype(dtype)
        return self

    def _with_weight(self, W, call, *args):
        """call(*args) while the wrapped layer's W is W (restored afterwards)."""
        params = self.layer.params
        full = params["W"]
        params["W"] = W
        try:
            return call(*args)
        finally:
            params["W"] = full

    def forward(self, x, train=True):
        if not train:
            return self.layer.forward(x, train=False)
        W = self.params["W"]
        K = kernels_for(W)
        mask = self._draw(K, W.shape, W.dtype, _inverted_mask(K, self.ratio))
        self._mask = mask
        self._W = _masked(K, W, mask)
        return self._with_weight(self._W, self.layer.forward, x, True)

    def backward(self, dout):
        W_masked = self._cached(self._W)
        dx = self._with_weight(W_masked, self.layer.backward, dout)
        dW = self.grads["W"]
        self.grads["W"] = _masked(kernels_for(dW, self._mask), dW, self._mask)
        return dx
