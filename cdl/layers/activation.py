"""Element-wise activations and Softmax. Each keeps only what its derivative needs."""
import numpy as np

from cdl._checks import check_float
from cdl.backend import kernels_for
from cdl.layers.base import Layer


class _Elementwise(Layer):
    """Shared plumbing: validate x, remember the output shape for dout checks."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def _input(self, x):
        return check_float(self.name, x, ndim=range(1, 8))

    def _dout(self, dout):
        return self._check_dout(dout, self._cached(self._shape))


class ReLU(_Elementwise):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0."""

    def forward(self, x, train=True):
        x = self._input(x)
        y = kernels_for(x).relu_forward(x, np.empty_like(x))
        if train:  # y > 0 exactly where x > 0: the output is the mask
            self._y, self._shape = y, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        y = self._y
        return kernels_for(dout, y).relu_backward(dout.astype(y.dtype, copy=False), y,
                                                  np.empty_like(y))


class LeakyReLU(_Elementwise):
    """y = x where x > 0, alpha * x elsewhere."""

    def __init__(self, alpha=0.01):
        super().__init__()
        if not 0 <= alpha < 1:
            raise ValueError(f"LeakyReLU: alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)

    def config(self):
        return {"alpha": self.alpha}

    def forward(self, x, train=True):
        x = self._input(x)
        slope = np.where(x > 0, 1, self.alpha).astype(x.dtype)
        if train:
            self._slope, self._shape = slope, x.shape
        return x * slope

    def backward(self, dout):
        return self._dout(dout) * self._slope


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2 (no overflow); dy/dx = y(1-y)."""

    def forward(self, x, train=True):
        x = self._input(x)
        y = np.tanh(x * x.dtype.type(0.5))
        y += 1
        y *= 0.5
        if train:
            self._y, self._shape = y, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        return dout * self._y * (1 - self._y)


class Tanh(_Elementwise):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def forward(self, x, train=True):
        x = self._input(x)
        y = np.tanh(x)
        if train:
            self._y, self._shape = y, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        return dout * (1 - self._y * self._y)


class Step(_Elementwise):
    """y = 1 where x > 0, else 0 (the perceptron's activation); dy/dx = 0 almost everywhere."""

    def forward(self, x, train=True):
        x = self._input(x)
        if train:
            self._shape = x.shape
        return (x > 0).astype(x.dtype)

    def backward(self, dout):
        return np.zeros_like(self._dout(dout))


class Softmax(_Elementwise):
    """Softmax over the last axis. y_i = exp(x_i - max) / sum_j exp(x_j - max).

    Backward: dx = y * (dout - sum(dout * y)). For classification, prefer the
    fused ``SoftmaxCrossEntropy`` loss on raw scores.
    """

    def forward(self, x, train=True):
        x = self._input(x)
        y = softmax(x)
        if train:
            self._y, self._shape = y, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        y = self._y
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


def softmax(x):
    """Numerically stable softmax over the last axis."""
    z = x - x.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z
