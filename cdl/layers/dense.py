"""Fully connected layers: Affine and Flatten."""
import numpy as np

from cdl import init as _init
from cdl._checks import check_float
from cdl.layers.base import Layer, compute_dtype


def _positive_int(who, name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {v!r}")
    return int(v)


class Affine(Layer):
    """Fully connected layer. x (N, ...) -> y (N, out): y = x W + b, W (in, out).

    Input of any shape is flattened per sample, as the book's Affine does.
    ``init`` names an initializer of ``cdl.init`` (He normal by default, right
    for ReLU stacks) or is a callable ``f(shape, rng, dtype)``.
    """

    def __init__(self, in_features, out_features, init="he_normal", bias=True,
                 dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = _positive_int("Affine", "in_features", in_features)
        self.out_features = _positive_int("Affine", "out_features", out_features)
        self.bias = bool(bias)
        self.params["W"] = _init.get(init)((self.in_features, self.out_features), rng, dtype)
        if self.bias:
            self.params["b"] = np.zeros(self.out_features, dtype=dtype)
        self._zero_grads()
        self._x = None

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias}

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(2, 8))
        x2 = x.reshape(x.shape[0], -1)
        if x2.shape[1] != self.in_features:
            raise ValueError(
                f"Affine({self.in_features}, {self.out_features}): input of shape {x.shape} "
                f"has {x2.shape[1]} features per sample, expected {self.in_features}")
        W = self.params["W"]
        x2 = x2.astype(compute_dtype(x2, W), copy=False)
        y = x2 @ W
        if self.bias:
            y += self.params["b"]
        if train:
            self._x, self._x_shape = x2, x.shape
        return y

    def backward(self, dout):
        x2 = self._cached(self._x)
        W = self.params["W"]
        dout = self._check_dout(dout, (x2.shape[0], self.out_features))
        self.grads["W"] = (x2.T @ dout).astype(W.dtype, copy=False)
        if self.bias:
            self.grads["b"] = dout.sum(axis=0).astype(W.dtype, copy=False)
        return (dout @ W.T).reshape(self._x_shape)


class Flatten(Layer):
    """Flatten per sample. x (N, ...) -> y (N, prod(...))."""

    def __init__(self):
        super().__init__()
        self._x_shape = None

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(2, 8))
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        x_shape = self._cached(self._x_shape)
        dout = self._check_dout(dout, (x_shape[0], int(np.prod(x_shape[1:]))))
        return dout.reshape(x_shape)

