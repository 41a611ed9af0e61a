"""Binarized layers (Courbariaux, Hubara et al. 2016): Binarize, BinaryAffine, BinaryConv2D.

Forward passes use +-1 values, with sign(x) = +1 where x >= 0 (the convention
of the bit packing in ``cdl.kernels.binary``); gradients stay real-valued and
cross the sign with the straight-through estimator (STE) of the BNN paper
(sec. 1.3): d sign(r)/dr is taken as 1 where |r| <= 1 and 0 elsewhere.

Training computes in floating point on +-1 tensors (BLAS is exact on small
integers), on the CPU or the GPU: the products go through the backend's
affine and conv kernels, the signs, the STE, the clipping and the scales
through ``cdl.kernels.binarize`` (CUDA twins in ``cdl.cuda.binarize``).
``Sequential.pack()`` turns a trained model into bit-packed weights running
through XNOR/popcount products (``cdl.packed``).

Latent weights. BinaryAffine and BinaryConv2D keep real-valued weights W
for the optimizer and binarize them in every forward. The BNN paper clips W
to [-1, 1] after each update (Algorithm 1); here the layer does it in place
at the start of each forward, which is the same thing one step later and
needs no hook in the optimizer or training loop. Weights that an optimizer
pushed past +-1 are back at +-1 before they are used or packed. It also
makes the STE of sign(W) 1 everywhere in the backward that follows (|W| <= 1),
so the weight gradient is not masked: that would be a pass over W for nothing.
The clipping, the signs of W and its scale are one fused pass
(``clip_sign_forward``).

Arrays reused. The signs of W go into the array the last training forward
wrote them to (it is kept for that forward's backward anyway), and the
weight gradient into the host array ``grads["W"]`` already is: in a
Sequential that is its view of the flat gradient buffer (``cdl._flatgrad``),
which then copies nothing. The fused pass is then the only pass over W
that a binary training step adds to the float one of the same shape (with
scale=True, the scale's backward is one more).
"""
import numpy as np

from cdl import init as _init
from cdl._checks import check_float, pair, positive_int
from cdl.backend import kernels_for
from cdl.layers.base import Layer, _Stochastic, cast, compute_dtype
from cdl.layers.conv import conv_output_shape


def sign(x):
    """+1 where x >= 0, -1 elsewhere, in x's dtype (the packing's convention); host or device."""
    K = kernels_for(x)
    return K.sign_forward(x, K.empty(x.shape, x.dtype))


def hard_sigmoid(x):
    """max(0, min(1, (x + 1) / 2)): the probability of +1 in stochastic binarization."""
    return np.clip((x + 1) * 0.5, 0.0, 1.0)


def _channels(a, axis):
    """a as (A, F, B) with F its axis ``axis`` (a view of a C-contiguous array)."""
    axis %= a.ndim
    F = a.shape[axis]
    A = int(np.prod(a.shape[:axis], dtype=np.int64))
    return a.reshape(A, F, a.size // (A * F) if a.size else 1)


def finish(dot, alpha, b, channel_axis=-1):
    """y = dot * alpha + b along channel_axis (either may be None), in dot's dtype.

    Shared by the binary layers and ``cdl.packed``, so that packed models
    compute their outputs from the integer products with the same arithmetic.
    Returns dot itself when there is nothing to apply.
    """
    if alpha is None and b is None:
        return dot
    K = kernels_for(dot)
    if isinstance(dot, np.ndarray):  # cdl.packed passes transposed host views
        dot = np.ascontiguousarray(dot)
    y = K.empty(dot.shape, dot.dtype)
    K.channel_scale_shift(_channels(dot, channel_axis),
                          None if alpha is None else cast(K, alpha, dot.dtype),
                          None if b is None else cast(K, b, dot.dtype),
                          _channels(y, channel_axis))
    return y


class Binarize(_Stochastic):
    """Sign activation. x (N, ...) -> y in {-1, +1}, same shape.

    mode="deterministic": y = +1 where x >= 0, else -1.
    mode="stochastic": in training forwards y = +1 with probability
    hard_sigmoid(x) = max(0, min(1, (x + 1)/2)), else -1 (BNN paper eq. 2);
    inference (train=False) uses the deterministic sign, as the paper's
    test-time networks do. Inside ``hold_noise()`` a stochastic forward
    replays the generator state of the last draw, so it repeats its signs.
    Backward (both modes): dx = dout * 1{|x| <= 1}, the STE. rng draws the
    stochastic signs: a numpy Generator, an int seed, or None for the
    package generator that ``cdl.seed`` resets.
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

    def _generator(self, x):
        """The generator of this draw: the layer's, or a replay of the last one's state."""
        last = self._noise
        if self._noise_held and last is not None and last[0] == (x.shape, x.dtype):
            rng = np.random.Generator(last[1]())
            rng.bit_generator.state = last[2]
            return rng
        rng = _init.get_rng(self._rng)
        self._noise = ((x.shape, x.dtype), type(rng.bit_generator), rng.bit_generator.state)
        return rng

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(1, 8))
        if train:
            self._x = x
        K = kernels_for(x)
        y = K.empty(x.shape, x.dtype)
        if self.mode == "stochastic" and train:
            return K.stochastic_sign_forward(x, self._generator(x), y)
        return K.sign_forward(x, y)

    def backward(self, dout):
        x = self._cached(self._x)
        dout = self._check_dout(dout, x.shape)
        K = kernels_for(dout, x)
        return K.ste_backward(dout, x, K.empty(x.shape, np.result_type(dout.dtype, x.dtype)))


class _BinaryLinear(Layer):
    """Shared parts: latent-weight clipping, XNOR-Net scaling, input binarization, STE.

    A subclass supplies the float product of the +-1 tensors (``_product``,
    ``_product_backward``: the backend's affine or conv kernels) and the views
    of its output and weights with the output channel in the middle
    (``_out3``, ``_w3``: see ``cdl.kernels.binarize``).
    """

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
        return kernels_for(W).clip(W, -1.0, 1.0, W)

    def alpha(self):
        """XNOR-Net scale per output unit, mean |W| over its fan-in (None when scale=False)."""
        if not self.scale:
            return None
        W = self._latent()
        K = kernels_for(W)
        return K.channel_abs_mean(self._w3(W), K.empty((self._out_channels(),), W.dtype))

    def finish(self, dot, channel_axis=-1):
        """y from the +-1 products: y = dot * alpha + b per output unit (as each applies)."""
        return finish(dot, self.alpha(), self.params.get("b"), channel_axis)

    def _forward(self, x, x_rows):
        """y for x (checked), x_rows its view as the product takes it; caches for backward."""
        W = self.params["W"]
        K = kernels_for(x_rows, W)
        dtype = compute_dtype(x_rows, W)
        if self.binarize_input:
            xb = K.sign_forward(x_rows, K.empty(x_rows.shape, dtype))
        else:
            xb = cast(K, x_rows, dtype)
        # one pass over W: clipped in place (see the module doc), its signs into wb, alpha
        wb = self._sign_workspace(K, W, dtype)
        alpha = K.empty((self._out_channels(),), W.dtype) if self.scale else None
        W3 = self._w3(W)
        K.clip_sign_forward(W3, -1.0, 1.0, W3, self._w3(wb), alpha)
        dot = self._product(K, xb, wb)
        return dot, (x_rows, xb, wb, dot, alpha, x.shape)

    def _sign_workspace(self, K, W, dtype):
        """An array for sign(W): the last training forward's, reused (it is held for the
        backward anyway), or a new one."""
        cache = self._cache
        if cache is not None:
            wb = cache[2]
            if type(wb) is type(W) and wb.shape == W.shape and wb.dtype == dtype:
                return wb
        return K.empty(W.shape, dtype)

    def _backward(self, dout, with_dx):
        """dx (None without with_dx) for dout; fills grads.

        dL/dW = alpha * (dL/dW_eff)_sign + dL/dalpha * sgn(W) / fan_in, with
        W_eff = alpha * sign(W) and alpha = mean |W| over the fan-in (XNOR-Net,
        Rastegari et al. 2016, sec. 3.1). The STE of sign(W), 1{|W| <= 1}, is 1
        everywhere: W was clipped to [-1, 1] by the forward, so no mask is applied.
        """
        x_rows, xb, wb, dot, alpha, x_shape = self._cached(self._cache)
        dout = self._check_dout(dout, dot.shape)
        W = self.params["W"]
        K = kernels_for(dout, dot, W)
        dtype = dot.dtype
        dout = cast(K, dout, dtype)
        F = self._out_channels()
        db = K.empty((F,), dtype) if self.bias else None
        g = dout
        if self.scale:
            g = K.empty(dout.shape, dtype)
            K.channel_scale_shift(self._out3(dout), cast(K, alpha, dtype), None, self._out3(g))
            dalpha = K.channel_dot(self._out3(dout), self._out3(dot), K.empty((F,), dtype))
            if self.bias:
                K.channel_sum(self._out3(dout), db)
        dx = K.empty(xb.shape, dtype) if with_dx else None
        gw = self._grad_target(K, "W", W.shape, dtype)
        self._product_backward(K, g, xb, wb, dx, gw, None if self.scale else db)
        if self.scale:
            K.channel_abs_mean_backward(dalpha, self._w3(W), self._w3(gw))
        self.grads["W"] = cast(K, gw, W.dtype)
        if self.bias:
            self.grads["b"] = cast(K, db, W.dtype)
        if not with_dx:
            return None
        if self.binarize_input:
            K.ste_backward(dx, x_rows, dx)
        return dx.reshape(x_shape)

    def backward(self, dout):
        return self._backward(dout, with_dx=True)

    def backward_params(self, dout):
        self._backward(dout, with_dx=False)


class BinaryAffine(_BinaryLinear):
    """Binarized fully connected layer. x (N, ...) -> y (N, out).

        y = sign(x) @ sign(W) [* alpha] [+ b],   W (in, out) latent, clipped to [-1, 1]

    binarize_input=False for a first layer fed real data (y = x @ sign(W) ...).
    scale=True multiplies output unit j by alpha_j = mean_i |W_ij| (XNOR-Net).
    Backward: the STE for both signs (see the module doc); the bias and the
    alpha path are exact. in_features and out_features are the sizes of W;
    bias=False drops b. ``init`` as for Affine; values are clipped to
    [-1, 1]. dtype is the latent weights' dtype; rng draws them (a numpy
    Generator, an int seed, or None for the package generator).
    """

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

    def _out_channels(self):
        return self.out_features

    def _out3(self, a):
        return a.reshape(a.shape[0], a.shape[1], 1)     # (N, out) -> (N, out, 1)

    def _w3(self, W):
        return W.reshape(W.shape[0], W.shape[1], 1)     # (in, out) -> (in, out, 1)

    def _product(self, K, xb, wb):
        return K.affine_forward(xb, wb, None, K.empty((xb.shape[0], wb.shape[1]), xb.dtype))

    def _product_backward(self, K, g, xb, wb, dx, gw, db):
        K.affine_backward(g, xb, wb, dx, gw, db)

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(2, 8))
        N = x.shape[0]
        x2 = x.reshape(N, x.size // N)  # C-contiguous (check_float): a view, host or device
        if x2.shape[1] != self.in_features:
            raise ValueError(
                f"BinaryAffine({self.in_features}, {self.out_features}): input of shape "
                f"{x.shape} has {x2.shape[1]} features per sample, expected {self.in_features}")
        dot, cache = self._forward(x, x2)
        if train:
            self._cache = cache
        return finish(dot, cache[4], self.params.get("b"))


class BinaryConv2D(_BinaryLinear):
    """Binarized 2-D convolution. x (N, C, H, W) -> y (N, F, OH, OW).

        y = conv(sign(x), sign(W)) [* alpha_f] [+ b_f],   W (F, C, KH, KW) latent in [-1, 1]

    Zero padding, as Conv2D: padded positions contribute 0 to the +-1 sums
    (the packed kernel, which cannot store a 0, adds a correction term: see
    ``cdl.binary.binary_conv2d``). alpha_f = mean |W[f]| when scale=True;
    binarize_input=False for a first layer fed real images. in_channels is C
    and out_channels F; kernel_size, stride and pad take an int or an (h, w)
    pair. bias=False drops b. ``init`` as for Conv2D (Xavier uniform by
    default); values are clipped to [-1, 1]. dtype is the latent weights'
    dtype; rng draws them (a numpy Generator, an int seed, or None for the
    package generator).
    """

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

    def _out_channels(self):
        return self.out_channels

    def _out3(self, a):
        return a.reshape(a.shape[0], a.shape[1], -1)    # (N, F, OH, OW) -> (N, F, OH*OW)

    def _w3(self, W):
        return W.reshape(1, W.shape[0], -1)             # (F, C, KH, KW) -> (1, F, C*KH*KW)

    def _product(self, K, xb, wb):
        return K.conv2d_forward(xb, wb, None, self.stride, self.pad,
                                K.empty(self.output_shape(xb.shape), xb.dtype))

    def _product_backward(self, K, g, xb, wb, dx, gw, db):
        K.conv2d_backward(g, xb, wb, self.stride, self.pad, dx, gw, db)

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=4, layout="(N, C, H, W)")
        self.output_shape(x.shape)
        dot, cache = self._forward(x, x)
        if train:
            self._cache = cache
        return finish(dot, cache[4], self.params.get("b"), channel_axis=1)
