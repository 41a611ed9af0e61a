"""Element-wise activations and Softmax. Each keeps only what its derivative needs.

The math is in the kernels (``cdl.kernels.activation`` and its CUDA twin),
picked by where the input lives; outputs are allocated through the same
backend. Backward computes in the forward's dtype (dout is cast to it).
"""
import numpy as np

from cdl._checks import FLOAT_DTYPES, check_float, is_device_array
from cdl.backend import kernels_for
from cdl.layers.base import Layer, cast


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
        K = kernels_for(x)
        y = K.relu_forward(x, K.empty_like(x))
        if train:  # y > 0 exactly where x > 0: the output is the mask
            self._y, self._shape = y, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        y = self._y
        K = kernels_for(dout, y)
        return K.relu_backward(cast(K, dout, y.dtype), y, K.empty_like(y))


class LeakyReLU(_Elementwise):
    """y = x where x > 0, alpha * x elsewhere; dy/dx = 1 where x > 0, else alpha."""

    def __init__(self, alpha=0.01):
        super().__init__()
        if not 0 <= alpha < 1:
            raise ValueError(f"LeakyReLU: alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)

    def config(self):
        return {"alpha": self.alpha}

    def forward(self, x, train=True):
        x = self._input(x)
        K = kernels_for(x)
        y = K.leaky_relu_forward(x, self.alpha, K.empty_like(x))
        if train:
            self._x, self._shape = x, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        x = self._x
        K = kernels_for(dout, x)
        return K.leaky_relu_backward(cast(K, dout, x.dtype), x, self.alpha,
                                     K.empty_like(x))


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2 (no overflow); dy/dx = y(1-y)."""

    def forward(self, x, train=True):
        x = self._input(x)
        K = kernels_for(x)
        y = K.sigmoid_forward(x, K.empty_like(x))
        if train:
            self._y, self._shape = y, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        y = self._y
        K = kernels_for(dout, y)
        return K.sigmoid_backward(cast(K, dout, y.dtype), y, K.empty_like(y))


class Tanh(_Elementwise):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def forward(self, x, train=True):
        x = self._input(x)
        K = kernels_for(x)
        y = K.tanh_forward(x, K.empty_like(x))
        if train:
            self._y, self._shape = y, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        y = self._y
        K = kernels_for(dout, y)
        return K.tanh_backward(cast(K, dout, y.dtype), y, K.empty_like(y))


class Step(_Elementwise):
    """y = 1 where x > 0, else 0 (the perceptron's activation); dy/dx = 0 almost everywhere."""

    def forward(self, x, train=True):
        x = self._input(x)
        K = kernels_for(x)
        if train:
            self._shape, self._dtype = x.shape, x.dtype
        return K.step_forward(x, K.empty_like(x))

    def backward(self, dout):
        dout = self._dout(dout)
        K = kernels_for(dout)
        return K.step_backward(dout, K.empty(dout.shape, self._dtype))


class Softmax(_Elementwise):
    """Softmax over the last axis. y_i = exp(x_i - max) / sum_j exp(x_j - max).

    Backward: dx = y * (dout - sum(dout * y)). For classification, prefer the
    fused ``SoftmaxCrossEntropy`` loss on raw scores.
    """

    def forward(self, x, train=True):
        x = self._input(x)
        K = kernels_for(x)
        y = K.empty_like(x)
        K.softmax_forward(_rows(x), _rows(y))
        if train:
            self._y, self._shape = y, x.shape
        return y

    def backward(self, dout):
        dout = self._dout(dout)
        y = self._y
        K = kernels_for(dout, y)
        dx = K.empty_like(y)
        K.softmax_backward(_rows(cast(K, dout, y.dtype)), _rows(y), _rows(dx))
        return dx


def _rows(a):
    """The (rows, last axis) view of a C-contiguous array (a view on the GPU too)."""
    cols = a.shape[a.ndim - 1]  # the simulator's shapes refuse negative indexes
    return a.reshape(a.size // cols, cols) if a.ndim != 2 else a


def softmax(x):
    """Numerically stable softmax over the last axis (a new array, on x's device).

    NumPy input that is not float32/float64 is computed in float64.
    """
    if not is_device_array(x):
        x = np.asarray(x)
        x = np.ascontiguousarray(x, dtype=x.dtype if x.dtype in FLOAT_DTYPES else np.float64)
    K = kernels_for(x)
    y = K.empty_like(x)
    if x.size:
        K.softmax_forward(_rows(x), _rows(y))
    return y
