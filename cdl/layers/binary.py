"""Binarized layers (Courbariaux, Hubara et al. 2016): Binarize, BinaryAffine, BinaryConv2D.

Forward passes use +-1 values, with sign(x) = +1 where x >= 0 (the convention
of the bit packing in ``cdl.kernels.binary``); gradients stay real-valued and
cross the sign with the straight-through estimator (STE) of the BNN paper
(sec. 1.3): d sign(r)/dr is taken as 1 where |r| <= 1 and 0 elsewhere.

Training computes in floating point on +-1 tensors (BLAS is exact on small
integers); ``Sequential.pack()`` turns a trained model into bit-packed
weights running through XNOR/popcount products (``cdl.packed``).

Latent weights. BinaryAffine and BinaryConv2D keep real-valued weights W
for the optimizer and binarize them in every forward. The BNN paper clips W
to [-1, 1] after each update (Algorithm 1); here the layer does it in place
at the start of each forward, which is the same thing one step later and
needs no hook in the optimizer or training loop. Weights that an optimizer
pushed past +-1 are back at +-1 before they are used or packed.
"""
import numpy as np

from cdl import init as _init
from cdl._checks import check_float, pair, positive_int
from cdl.backend import kernels_for
from cdl.kernels.binary import sign_pm1
from cdl.layers.base import Layer, compute_dtype
from cdl.layers.conv import conv_output_shape
from cdl.layers.dropout import _Stochastic


def sign(x):
    """+1 where x >= 0, -1 elsewhere, in x's dtype (the packing's convention)."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    sign_pm1(x.reshape(-1), out.reshape(-1))
    return out


def ste_mask(x):
    """The straight-through estimator's d sign(x)/dx: 1 where |x| <= 1, else 0."""
    return (np.abs(x) <= 1).astype(x.dtype)


def hard_sigmoid(x):
    """max(0, min(1, (x + 1) / 2)): the probability of +1 in stochastic binarization."""
    return np.clip((x + 1) * 0.5, 0.0, 1.0)


def finish(dot, alpha, b, channel_axis=-1):
    """y = dot * alpha + b along channel_axis (either may be None), in dot's dtype.

    Shared by the binary layers and ``cdl.packed``, so that packed models
    compute their outputs from the integer products with the same arithmetic.
    """
    shape = [1] * dot.ndim
    shape[channel_axis] = -1
    if alpha is not None:
        dot = dot * alpha.astype(dot.dtype).reshape(shape)
    if b is not None:
        dot = dot + b.astype(dot.dtype).reshape(shape)
    return dot


class Binarize(_Stochastic):
    """Sign activation. x (N, ...) -> y in {-1, +1}, same shape.

    mode="deterministic": y = +1 where x >= 0, else -1.
    mode="stochastic": in training forwards y = +1 with probability
    hard_sigmoid(x) = max(0, min(1, (x + 1)/2)), else -1 (BNN paper eq. 2);
    inference (train=False) uses the deterministic sign, as the paper's
    test-time networks do.
    Backward (both modes): dx = dout * 1{|x| <= 1}, the STE.
    """

    MODES = ("deterministic", "stochastic")

    def __init__(self, mode="deterministic", rng=None):
        super().__init__(rng)
        if mode not in self.MODES:
            raise ValueError(f"Binarize: mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self._x = None

    def config(self):
        return {"mode": self.mode}

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(1, 8))
        if train:
            self._x = x
        if self.mode == "stochastic" and train:
            u = self._draw(x.shape, x.dtype,
                           lambda rng, shape, dtype: rng.random(shape, dtype=dtype))
            return np.where(u < hard_sigmoid(x), x.dtype.type(1), x.dtype.type(-1))
        return sign(x)

    def backward(self, dout):
        x = self._cached(self._x)
        return self._check_dout(dout, x.shape) * ste_mask(x)


class _BinaryLinear(Layer):
    """Shared parts: latent-weight clipping, XNOR-Net scaling, input binarization."""

    def _init_common(self, shape, scale, bias, binarize_input, init, dtype, rng, out):
        self.scale, self.bias = bool(scale), bool(bias)
        self.binarize_input = bool(binarize_input)
        self.params["W"] = np.clip(_init.get(init)(shape, rng, dtype), -1, 1)
        if self.bias:
            self.params["b"] = np.zeros(out, dtype=dtype)
        self._zero_grads()
        self._cache = None

    def _latent(self):
        """W clipped to [-1, 1] in place (see the module doc), then returned."""
        W = self.params["W"]
        np.clip(W, -1, 1, out=W)
        return W

    def _binary_input(self, x):
        return sign(x) if self.binarize_input else x

    def alpha(self):
        """XNOR-Net scale per output unit, mean |W| over its fan-in (None when scale=False)."""
        if not self.scale:
            return None
        return np.abs(self._latent()).mean(axis=self._fan_axes)

    def finish(self, dot, channel_axis=-1):
        """y from the +-1 products: y = dot * alpha + b per output unit (as each applies)."""
        return finish(dot, self.alpha(), self.params.get("b"), channel_axis)

    def _weight_grad(self, W, g_wb, dalpha):
        """dL/dW from g_wb = dL/d sign(W) (already times alpha when scaled) and dL/dalpha.

        W_eff = alpha * sign(W) with alpha = mean |W| over the fan-in, so
        dL/dW = alpha * dL/dW_eff * STE(W) + dL/dalpha * sign(W) / fan_in
        (XNOR-Net, Rastegari et al. 2016, sec. 3.1, with the STE for sign).
        """
        dW = g_wb * ste_mask(W)
        if self.scale:
            shape = [1] * W.ndim
            shape[self._out_axis] = -1
            fan_in = W.size // W.shape[self._out_axis]
            dW = dW + dalpha.reshape(shape) * np.sign(W) / fan_in
        return dW.astype(W.dtype, copy=False)


class BinaryAffine(_BinaryLinear):
    """Binarized fully connected layer. x (N, ...) -> y (N, out).

        y = sign(x) @ sign(W) [* alpha] [+ b],   W (in, out) latent, clipped to [-1, 1]

    binarize_input=False for a first layer fed real data (y = x @ sign(W) ...).
    scale=True multiplies output unit j by alpha_j = mean_i |W_ij| (XNOR-Net).
    Backward: the STE for both signs (see the module doc); the bias and the
    alpha path are exact. ``init`` as for Affine; values are clipped to [-1, 1].
    """

    _fan_axes = 0
    _out_axis = 1

    def __init__(self, in_features, out_features, scale=False, bias=True, binarize_input=True,
                 init="xavier_uniform", dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = positive_int("BinaryAffine", "in_features", in_features)
        self.out_features = positive_int("BinaryAffine", "out_features", out_features)
        self._init_common((self.in_features, self.out_features), scale, bias, binarize_input,
                          init, dtype, rng, self.out_features)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "scale": self.scale, "bias": self.bias, "binarize_input": self.binarize_input}

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(2, 8))
        x2 = x.reshape(x.shape[0], -1)
        if x2.shape[1] != self.in_features:
            raise ValueError(
                f"BinaryAffine({self.in_features}, {self.out_features}): input of shape "
                f"{x.shape} has {x2.shape[1]} features per sample, expected {self.in_features}")
        W = self._latent()
        dtype = compute_dtype(x2, W)
        x2 = x2.astype(dtype, copy=False)
        xb, wb = self._binary_input(x2), sign(W.astype(dtype, copy=False))
        dot = xb @ wb
        if train:
            self._cache = (x2, xb, wb, dot, x.shape)
        return self.finish(dot)

    def backward(self, dout):
        x2, xb, wb, dot, x_shape = self._cached(self._cache)
        dout = self._check_dout(dout, dot.shape)
        W = self.params["W"]
        alpha = self.alpha()
        g = dout * alpha.astype(dout.dtype) if self.scale else dout
        dalpha = (dout * dot).sum(axis=0) if self.scale else None
        self.grads["W"] = self._weight_grad(W, xb.T @ g, dalpha)
        if self.bias:
            self.grads["b"] = dout.sum(axis=0).astype(W.dtype, copy=False)
        dx = g @ wb.T
        if self.binarize_input:
            dx *= ste_mask(x2)
        return dx.reshape(x_shape)


class BinaryConv2D(_BinaryLinear):
    """Binarized 2-D convolution. x (N, C, H, W) -> y (N, F, OH, OW).

        y = conv(sign(x), sign(W)) [* alpha_f] [+ b_f],   W (F, C, KH, KW) latent in [-1, 1]

    Zero padding, as Conv2D: padded positions contribute 0 to the +-1 sums
    (the packed kernel, which cannot store a 0, adds a correction term: see
    ``cdl.binary.binary_conv2d``). alpha_f = mean |W[f]| when scale=True;
    binarize_input=False for a first layer fed real images. kernel_size,
    stride and pad take an int or an (h, w) pair.
    """

    _fan_axes = (1, 2, 3)
    _out_axis = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, pad=0, scale=False,
                 bias=True, binarize_input=True, init="xavier_uniform", dtype=np.float32,
                 rng=None):
        super().__init__()
        self.in_channels = positive_int("BinaryConv2D", "in_channels", in_channels)
        self.out_channels = positive_int("BinaryConv2D", "out_channels", out_channels)
        self.kernel_size = pair("BinaryConv2D", "kernel_size", kernel_size, 1)
        self.stride = pair("BinaryConv2D", "stride", stride, 1)
        self.pad = pair("BinaryConv2D", "pad", pad, 0)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self._init_common(shape, scale, bias, binarize_input, init, dtype, rng, self.out_channels)

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "pad": list(self.pad), "scale": self.scale, "bias": self.bias,
                "binarize_input": self.binarize_input}

    def _describe(self):
        return (f"BinaryConv2D({self.in_channels}, {self.out_channels}, kernel "
                f"{self.kernel_size}, stride {self.stride}, pad {self.pad})")

    def output_shape(self, x_shape):
        """(N, F, OH, OW) for an input of shape x_shape, or ValueError."""
        return conv_output_shape(self, x_shape)

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=4, layout="(N, C, H, W)")
        self.output_shape(x.shape)
        W = self._latent()
        dtype = compute_dtype(x, W)
        x = x.astype(dtype, copy=False)
        xb, wb = self._binary_input(x), sign(W.astype(dtype, copy=False))
        K = kernels_for(xb)
        dot = K.conv2d_forward(xb, wb, None, self.stride, self.pad,
                               K.empty(self.output_shape(xb.shape), xb.dtype))
        if train:
            self._cache = (x, xb, wb, dot)
        return self.finish(dot, channel_axis=1)

    def backward(self, dout):
        x, xb, wb, dot = self._cached(self._cache)
        dout = self._check_dout(dout, dot.shape)
        W = self.params["W"]
        alpha = self.alpha()
        g = dout * alpha.astype(dout.dtype)[None, :, None, None] if self.scale else dout
        dalpha = (dout * dot).sum(axis=(0, 2, 3)) if self.scale else None
        K = kernels_for(g)
        dx, g_wb, _ = K.conv2d_backward(
            np.ascontiguousarray(g, dtype=x.dtype), xb, wb, self.stride, self.pad,
            K.empty(xb.shape, xb.dtype), K.empty(wb.shape, x.dtype), None)
        self.grads["W"] = self._weight_grad(W, g_wb, dalpha)
        if self.bias:
            self.grads["b"] = dout.sum(axis=(0, 2, 3)).astype(W.dtype, copy=False)
        if self.binarize_input:
            dx *= ste_mask(x)
        return dx
