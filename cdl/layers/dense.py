"""Fully connected layers: Affine and Flatten."""
import numpy as np

from cdl import init as _init
from cdl._checks import check_float, positive_int
from cdl.backend import kernels_for
from cdl.layers.base import Layer, cast, compute_dtype


class Affine(Layer):
    """Fully connected layer. x (N, ...) -> y (N, out): y = x W + b, W (in, out).

    Input of any shape is flattened per sample, as the book's Affine does.
    in_features and out_features are the sizes in and out of W. ``init``
    names an initializer of ``cdl.init`` (He normal by default, right for
    ReLU stacks) or is a callable ``f(shape, rng, dtype)``. bias=False drops
    b (y = x W). dtype is the parameters' dtype; rng draws the initial W (a
    numpy Generator, an int seed, or None for the package generator that
    ``cdl.seed`` resets).
    """

    def __init__(self, in_features, out_features, init="he_normal", bias=True,
                 dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = positive_int("Affine", "in_features", in_features)
        self.out_features = positive_int("Affine", "out_features", out_features)
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
        N = x.shape[0]
        x2 = x.reshape(N, x.size // N)  # C-contiguous (check_float): a view, host or device
        if x2.shape[1] != self.in_features:
            raise ValueError(
                f"Affine({self.in_features}, {self.out_features}): input of shape {x.shape} "
                f"has {x2.shape[1]} features per sample, expected {self.in_features}")
        W = self.params["W"]
        K = kernels_for(x2, W)
        x2 = cast(K, x2, compute_dtype(x2, W))
        y = K.empty((N, self.out_features), x2.dtype)
        K.affine_forward(x2, W, self.params.get("b"), y)
        if train:
            self._x, self._x_shape = x2, x.shape
        return y

    def backward(self, dout):
        return self._backward(dout, with_dx=True).reshape(self._x_shape)

    def backward_params(self, dout):
        self._backward(dout, with_dx=False)

    def _backward(self, dout, with_dx):
        x2 = self._cached(self._x)
        W = self.params["W"]
        dout = self._check_dout(dout, (x2.shape[0], self.out_features))
        K = kernels_for(dout, x2, W)
        dout = cast(K, dout, x2.dtype)
        dx = K.empty(x2.shape, x2.dtype) if with_dx else None
        dW = K.empty(W.shape, x2.dtype)
        db = K.empty((self.out_features,), x2.dtype) if self.bias else None
        K.affine_backward(dout, x2, W, dx, dW, db)
        self.grads["W"] = cast(K, dW, W.dtype)
        if self.bias:
            self.grads["b"] = cast(K, db, W.dtype)
        return dx


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

