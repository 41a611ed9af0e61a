"""2-D convolution layer."""
import numpy as np

from cdl import init as _init
from cdl._checks import check_float, conv_output_hw, pair, positive_int
from cdl.backend import kernels_for
from cdl.layers.base import Layer, cast, compute_dtype


def conv_output_shape(layer, x_shape):
    """(N, F, OH, OW) of a convolution layer (Conv2D, BinaryConv2D) for input x_shape, or a
    ValueError naming the layer: wrong ndim, channel count, or a kernel that does not fit."""
    if len(x_shape) != 4:
        raise ValueError(f"{layer._describe()}: expected 4-D (N, C, H, W) input, "
                         f"got shape {tuple(x_shape)}")
    if x_shape[1] != layer.in_channels:
        raise ValueError(f"{layer._describe()}: input of shape {tuple(x_shape)} has "
                         f"{x_shape[1]} channels, expected {layer.in_channels}")
    oh, ow = conv_output_hw(layer._describe(), x_shape[2:], layer.kernel_size,
                            layer.stride, layer.pad)
    return x_shape[0], layer.out_channels, oh, ow


class Conv2D(Layer):
    """2-D convolution (cross-correlation). x (N, C, H, W) -> y (N, F, OH, OW).

    y[n, f] = sum_c x[n, c] * W[f, c] + b[f] over KH x KW windows, with
    OH = (H + 2*PH - KH) // SH + 1 (likewise OW). W (F, C, KH, KW), b (F,).
    in_channels is C and out_channels F; kernel_size, stride and pad (zero
    padding on each side) take an int or an (h, w) pair. ``init`` names an
    initializer of ``cdl.init`` (He normal by default) or is a callable
    ``f(shape, rng, dtype)``; bias=False drops b. dtype is the parameters'
    dtype; rng draws the initial W (a numpy Generator, an int seed, or None
    for the package generator that ``cdl.seed`` resets).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, pad=0,
                 init="he_normal", bias=True, dtype=np.float32, rng=None):
        super().__init__()
        self.in_channels = positive_int("Conv2D", "in_channels", in_channels)
        self.out_channels = positive_int("Conv2D", "out_channels", out_channels)
        self.kernel_size = pair("Conv2D", "kernel_size", kernel_size, 1)
        self.stride = pair("Conv2D", "stride", stride, 1)
        self.pad = pair("Conv2D", "pad", pad, 0)
        self.bias = bool(bias)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.params["W"] = _init.get(init)(shape, rng, dtype)
        if self.bias:
            self.params["b"] = np.zeros(self.out_channels, dtype=dtype)
        self._zero_grads()
        self._x = None

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "pad": list(self.pad), "bias": self.bias}

    def _describe(self):
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel {self.kernel_size}, "
                f"stride {self.stride}, pad {self.pad})")

    def output_shape(self, x_shape):
        """(N, F, OH, OW) for an input of shape x_shape, or ValueError."""
        return conv_output_shape(self, x_shape)

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=4, layout="(N, C, H, W)")
        self._y_shape = self.output_shape(x.shape)
        W, b = self.params["W"], self.params.get("b")
        K = kernels_for(x, W)
        dtype = compute_dtype(x, W)
        x, W = cast(K, x, dtype), cast(K, W, dtype)
        y = K.conv2d_forward(x, W, b, self.stride, self.pad, K.empty(self._y_shape, dtype))
        if train:
            self._x = x
        return y

    def backward(self, dout):
        return self._backward(dout, with_dx=True)

    def backward_params(self, dout):
        """Fill grads only: the kernels skip dx (col2im or its gather) altogether."""
        self._backward(dout, with_dx=False)

    def _backward(self, dout, with_dx):
        x = self._cached(self._x)
        dout = self._check_dout(dout, self._y_shape)
        W = self.params["W"]
        K = kernels_for(dout, x, W)
        dx = K.empty(x.shape, x.dtype) if with_dx else None
        dW = K.empty(W.shape, x.dtype)
        db = K.empty((self.out_channels,), x.dtype) if self.bias else None
        K.conv2d_backward(cast(K, dout, x.dtype), x, cast(K, W, x.dtype), self.stride,
                          self.pad, dx, dW, db)
        self.grads["W"] = cast(K, dW, W.dtype)
        if self.bias:
            self.grads["b"] = cast(K, db, W.dtype)
        return dx
