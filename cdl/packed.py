"""Packed inference: a trained binarized Sequential as 1-bit weights and XNOR/popcount products.

    packed = net.pack()                  # cdl.packed.pack_model(net)
    packed.predict(x); packed.accuracy(x, t); packed.nbytes; print(packed)

What packing keeps of each layer (bit layout: ``cdl.kernels.binary``):

- BinaryAffine / BinaryConv2D: sign(W) packed into uint64 rows, one per
  output unit, bits along its fan-in, plus alpha (when scaled) and the
  bias. A layer that binarizes its input computes its +-1 products as int32
  with the XNOR/popcount GEMM (a conv through packed im2col and the
  zero-padding correction of ``cdl.bitops.binary_conv2d``). A first layer
  (binarize_input=False) multiplies its real input by the unpacked signs:
  real inputs have no 1-bit form.
- Folding: when a layer's integer products reach a sign -- a following
  Binarize, or the input binarization of the next binary layer -- through an
  optional MaxPool2D (convs) and an optional BatchNorm (Dropout and
  GaussianNoise in between are skipped: they are identities at inference),
  the chain finish -> pool -> BatchNorm -> sign becomes one integer
  threshold per channel: bit = dot >= t, or dot <= t where the chain
  decreases (gamma < 0). t is found by bisection over the integer range
  [-n, n], evaluating the model's own float arithmetic
  (``cdl.layers.binary.finish`` and the BatchNorm forward in inference
  mode) at integer products, so the packed model reproduces the float
  model's signs exactly, rounding included, where the closed form
  t = mean - beta * sqrt(var + eps) / gamma could be off by one at a tie.
  The max pool then runs on the bits: OR over the window for increasing
  channels, AND for decreasing ones (``cdl.kernels.binary.maxpool_bits``),
  which equals thresholding the pooled products because finish is
  nondecreasing (alpha >= 0) and BatchNorm is monotone per channel.
- Between binary layers activations stay packed: thresholds write bits
  straight into the next layer's input words, as channel-packed pixels
  (N, H, W, ceil(C/64)) after a conv and as packed rows after an affine
  layer. An affine layer fed by a conv gets its weights in the pixel
  layout, so a Flatten in between costs nothing.
- Every other layer runs its float forward in inference mode, on +-1
  floats where it follows a thresholded layer.

Predictions equal those of ``net.predict`` for inputs in the model's dtype:
the same signs reach every layer, and the layers after the last binary
product compute with the same arithmetic on the same (exactly integer)
values. A packed model is a snapshot: train on, and pack again.
"""
import numpy as np

from cdl import bitops as _B
from cdl._checks import check_float, conv_output_hw
from cdl.backend import kernels_for
from cdl.layers.binary import Binarize, BinaryAffine, BinaryConv2D, finish
from cdl.layers.dense import Flatten
from cdl.layers.dropout import Dropout, GaussianNoise
from cdl.layers.norm import BatchNorm
from cdl.layers.pool import MaxPool2D
from cdl.predictor import Predictor, in_batches

_SKIPPED = (Dropout, GaussianNoise)  # identities at inference


def _nbytes(*arrays):
    return int(sum(a.nbytes for a in arrays if a is not None))


def _bool_words(mask):
    return _B.pack_bits(np.where(mask, 1.0, -1.0))


class _Rows:
    """Packed signs of n features per sample, words (N, ceil(n/64)): a binary affine input."""

    def __init__(self, words, n, dtype):
        self.words, self.n, self.dtype = words, n, dtype

    def to_float(self):
        return _B.unpack_bits(self.words, self.n, self.dtype)


class _Pixels:
    """Channel-packed pixels (N, H, W, ceil(C/64)) of C channels: a binary conv input."""

    def __init__(self, words, C, dtype):
        self.words, self.C, self.dtype = words, C, dtype

    def to_float(self):
        """The +-1 activations as a float (N, C, H, W) array."""
        N, H, W, WC = self.words.shape
        signs = _B.unpack_bits(self.words.reshape(-1, WC), self.C, self.dtype)
        return np.ascontiguousarray(signs.reshape(N, H, W, self.C).transpose(0, 3, 1, 2))


def _as_float(x):
    return x.to_float() if isinstance(x, (_Rows, _Pixels)) else x


class _FloatStage:
    """A layer run as in the float model (forward in inference mode)."""

    def __init__(self, layer):
        self.layer = layer
        self.nbytes = _nbytes(*layer.params.values(), *layer.buffers.values())

    def run(self, x):
        return self.layer.forward(_as_float(x), train=False)

    def __repr__(self):
        return f"{self.layer!r}"


class _Threshold:
    """Integer thresholds per channel that replace finish -> [MaxPool2D] -> [BatchNorm] -> sign."""

    def __init__(self, stage, pool, bn):
        self.pool, dtype = pool, stage.dtype
        n, F = stage.n, stage.out_features
        shape = (1, F, 1, 1) if stage.conv else (1, F)

        def positive(v):
            y = finish(v.astype(dtype).reshape(shape), stage.alpha, stage.b, 1)
            if bn is not None:
                y = bn.forward(y, train=False)
            return y.reshape(F) >= 0

        lo, hi = np.full(F, -n, dtype=np.int64), np.full(F, n, dtype=np.int64)
        p_lo, p_hi = positive(lo), positive(hi)
        up = ~p_lo
        # bisect for the first integer where the predicate flips (invariant: P(lo) != P(hi))
        flips = p_lo != p_hi
        while True:
            open_ = flips & (hi - lo > 1)
            if not open_.any():
                break
            mid = (lo + hi) // 2
            same_as_lo = positive(mid) == p_lo
            lo = np.where(open_ & same_as_lo, mid, lo)
            hi = np.where(open_ & ~same_as_lo, mid, hi)
        # increasing: +1 from hi on (dot >= hi); decreasing: +1 up to lo (dot <= lo)
        thr = np.where(up, hi, lo)
        # constant channels: always +1 (dot >= -n-1) or never (dot >= n+1)
        thr = np.where(flips, thr, np.where(p_lo, -n - 1, n + 1))
        self.up = np.where(flips, up, True)
        self.thr = thr.astype(np.int32)
        self._up_words = _bool_words(self.up) if pool is not None else None
        self.nbytes = _nbytes(self.thr, self.up)

    def bits(self, dots):
        """Packed signs (R, ceil(F/64)) of the products dots (R, F)."""
        out = np.empty((dots.shape[0], -(-dots.shape[1] // 64)), dtype=np.uint64)
        return kernels_for(dots).threshold_pack(dots, self.thr, self.up, out)

    def pool_bits(self, px):
        """MaxPool2D applied to thresholded pixels px (N, H, W, WC) (see the module doc)."""
        p = self.pool
        oh, ow = conv_output_hw(f"packed {p.name}{p.pool_size}", px.shape[1:3], p.pool_size,
                                p.stride, p.pad)
        out = np.empty((px.shape[0], oh, ow, px.shape[3]), dtype=np.uint64)
        return kernels_for(px).maxpool_bits(px, self._up_words, *p.pool_size, *p.stride,
                                            *p.pad, out)


class _BinaryStage:
    """A BinaryAffine or BinaryConv2D with packed weights, and what follows its products."""

    def __init__(self, layer, pixel_input=None):
        W = layer._latent()
        self.dtype = W.dtype
        self.conv = isinstance(layer, BinaryConv2D)
        self.binarize_input = layer.binarize_input
        self.out_features = layer.out_channels if self.conv else layer.out_features
        self.n = W.size // self.out_features
        # pixel_input = (C, H*W): an affine layer fed by a conv's packed pixels
        self.pixel_input = pixel_input
        if self.conv:
            self.in_channels = layer.in_channels
            self.kernel, self.stride, self.pad = layer.kernel_size, layer.stride, layer.pad
            self.weights = _B.pack_conv_weights(W)
            self._corrections = {}
        else:
            self.in_features = layer.in_features
            if not self.binarize_input:
                self.weights = _B.pack_bits(W)  # rows of (in, out): unpacks to the layout of x @ W
            elif pixel_input is not None:
                C, hw = pixel_input  # feature c*HW + p of the float model sits at pixel p, slot c
                self.weights = _B.pack_bits(np.ascontiguousarray(
                    W.T.reshape(-1, C, hw).transpose(0, 2, 1))).reshape(self.out_features, -1)
            else:
                self.weights = _B.pack_bits(np.ascontiguousarray(W.T))
        self.alpha = layer.alpha()
        b = layer.params.get("b")
        self.b = None if b is None else b.copy()
        self.threshold = None
        self.emit_packed = False
        self.description = repr(layer)

    @property
    def nbytes(self):
        t = self.threshold.nbytes if self.threshold is not None else 0
        return _nbytes(self.weights, self.alpha, self.b) + t

    def _signs_matrix(self, dtype):
        """The +-1 weights in the float layer's layout."""
        if not self.conv:
            return _B.unpack_bits(self.weights, self.out_features, dtype)  # (in, out)
        kh, kw = self.kernel
        signs = _B.unpack_bits(self.weights, self.n, dtype)
        return np.ascontiguousarray(signs.reshape(self.out_features, kh, kw, self.in_channels)
                                    .transpose(0, 3, 1, 2))

    def _fail(self, why):
        raise ValueError(f"packed {self.description}: {why}")

    def _conv_input(self, x):
        """Packed pixels of a conv input (float or packed), checked."""
        if isinstance(x, _Pixels):
            if x.C != self.in_channels:
                self._fail(f"input has {x.C} channels, expected {self.in_channels}")
            px = x.words
        else:
            x = check_float(f"packed {self.description}", x, ndim=4, layout="(N, C, H, W)")
            if x.shape[1] != self.in_channels:
                self._fail(f"input of shape {x.shape} has {x.shape[1]} channels, expected "
                           f"{self.in_channels}")
            px = _B.pack_pixels(x)
        conv_output_hw(f"packed {self.description}", px.shape[1:3], self.kernel, self.stride,
                       self.pad)
        return px

    def _affine_input(self, x):
        """Packed input words (N, W) of an affine layer, in the layout of its weights."""
        if isinstance(x, _Rows) and self.pixel_input is None and x.n == self.n:
            return x.words
        if isinstance(x, _Pixels) and self.pixel_input is not None:
            N, H, W, _ = x.words.shape
            if (x.C, H * W) == self.pixel_input:
                return x.words.reshape(N, -1)
        x = check_float(f"packed {self.description}", _as_float(x), ndim=range(2, 8))
        if x[0].size != self.in_features:
            self._fail(f"input of shape {x.shape} has {x[0].size} features per sample, "
                       f"expected {self.in_features}")
        if self.pixel_input is None:
            return _B.pack_bits(x.reshape(len(x), -1))
        C, hw = self.pixel_input
        return _B.pack_pixels(x.reshape(len(x), C, hw, 1)).reshape(len(x), -1)

    def _real_input(self, x):
        """A first layer: real x times the unpacked signs, in the float layer's dtype."""
        who = f"packed {self.description}"
        if self.conv:
            x = check_float(who, x, ndim=4, layout="(N, C, H, W)")
            if x.shape[1] != self.in_channels:
                self._fail(f"input of shape {x.shape} has {x.shape[1]} channels, expected "
                           f"{self.in_channels}")
            oh, ow = conv_output_hw(who, x.shape[2:], self.kernel, self.stride, self.pad)
            x = x.astype(np.result_type(x.dtype, self.dtype), copy=False)
            y = np.empty((len(x), self.out_features, oh, ow), dtype=x.dtype)
            dot = kernels_for(x).conv2d_forward(x, self._signs_matrix(x.dtype), None,
                                                self.stride, self.pad, y)
        else:
            x = check_float(who, x, ndim=range(2, 8))
            if x[0].size != self.in_features:
                self._fail(f"input of shape {x.shape} has {x[0].size} features per sample, "
                           f"expected {self.in_features}")
            x = x.astype(np.result_type(x.dtype, self.dtype), copy=False)
            dot = x.reshape(len(x), -1) @ self._signs_matrix(x.dtype)
        return finish(dot, self.alpha, self.b, 1)

    def run(self, x):
        if not self.binarize_input:
            return self._real_input(_as_float(x))
        if self.conv:
            px = self._conv_input(x)
            hw = px.shape[1:3]
            corr = self._corrections.get(hw)
            if corr is None and any(self.pad):
                corr = _B.padding_correction(self._signs_matrix(np.float64), hw, self.stride,
                                             self.pad)
                self._corrections[hw] = corr
            dots = _B.conv_dots(px, self.in_channels, self.weights, self.kernel, self.stride,
                                self.pad, corr)
            N, F = px.shape[0], self.out_features
            oh, ow = conv_output_hw(self.description, hw, self.kernel, self.stride, self.pad)
            if self.threshold is None:
                y = dots.reshape(N, oh, ow, F).transpose(0, 3, 1, 2).astype(self.dtype)
                return finish(y, self.alpha, self.b, 1)
            bits = self.threshold.bits(dots).reshape(N, oh, ow, -1)
            if self.threshold.pool is not None:
                bits = self.threshold.pool_bits(bits)
            out = _Pixels(bits, F, self.dtype)
            return out if self.emit_packed else out.to_float()
        words = self._affine_input(x)
        dots = np.empty((len(words), self.out_features), dtype=np.int32)
        kernels_for(words).xnor_gemm(words, self.weights, self.n, dots)
        if self.threshold is None:
            return finish(dots.astype(self.dtype), self.alpha, self.b, 1)
        out = _Rows(self.threshold.bits(dots), self.out_features, self.dtype)
        return out if self.emit_packed else out.to_float()

    def __repr__(self):
        tail = ""
        if self.threshold is not None:
            pool = " + max pool on bits" if self.threshold.pool is not None else ""
            tail = f" -> integer thresholds{pool}" + (" -> packed" if self.emit_packed else "")
        mode = "XNOR-popcount" if self.binarize_input else "real input x unpacked signs"
        return f"packed {self.description} [{mode}]{tail}"


def _skip(layers, k, also=()):
    while k < len(layers) and isinstance(layers[k], _SKIPPED + also):
        k += 1
    return k


def _binarizes_input(layer):
    return isinstance(layer, (BinaryAffine, BinaryConv2D)) and layer.binarize_input


class PackedModel(Predictor):
    """Inference-only model of packed stages (see the module doc); built by ``pack_model``.

    stages run in order; float_bytes is the size of the float model's parameters (for
    the comparison in repr); outputs is the float model's ``Sequential.outputs``
    ("softmax", "sigmoid" or "regression"), which predict_proba follows.
    """

    def __init__(self, stages, float_bytes, outputs="softmax"):
        self.stages = stages
        self.float_bytes = float_bytes
        self.outputs = outputs  # the float model's (Sequential.outputs), for predict_proba

    def forward(self, x):
        """Scores for x, as ``Sequential.forward(x, train=False)`` gives them."""
        out = x
        for stage in self.stages:
            out = stage.run(out)
        return _as_float(out)

    def predict(self, x, batch_size=None):
        """Scores for x, computed in chunks of batch_size samples (predict_proba and accuracy
        build on it: ``cdl.predictor``)."""
        return in_batches(self.forward, x, batch_size)

    @property
    def nbytes(self):
        """Bytes of everything the packed model stores (weights, thresholds, float layers)."""
        return int(sum(s.nbytes for s in self.stages))

    def summary(self):
        """[(stage, bytes)] for reports."""
        return [(repr(s), s.nbytes) for s in self.stages]

    def __repr__(self):
        body = "".join(f"\n  ({i}) {s!r}  [{s.nbytes} B]" for i, s in enumerate(self.stages))
        return (f"PackedModel({body}\n  {self.nbytes} bytes packed vs {self.float_bytes} bytes "
                f"float\n)")


def pack_model(net):
    """A PackedModel that predicts as ``net`` does, with 1-bit weights (see the module doc)."""
    layers = list(net.layers)
    for i, layer in enumerate(layers):
        stack = list(layer.children())
        while stack:
            child = stack.pop()
            if isinstance(child, (BinaryAffine, BinaryConv2D, Binarize)):
                raise ValueError(f"pack: layer {i} ({layer.name}) contains a {child.name}; "
                                 f"binary layers inside containers cannot be packed")
            stack.extend(child.children())
    float_bytes = _nbytes(*[a for l in layers for a in (*l.params.values(),
                                                        *l.buffers.values())])
    stages, i, pixels_of = [], 0, None  # pixels_of: channels of the packed pixels flowing in
    while i < len(layers):
        layer = layers[i]
        if not isinstance(layer, (BinaryAffine, BinaryConv2D)):
            stages.append(_FloatStage(layer))
            i += 1
            continue
        pixel_input = None
        if isinstance(layer, BinaryAffine) and pixels_of is not None:
            pixel_input = (pixels_of, layer.in_features // pixels_of)
        stage = _BinaryStage(layer, pixel_input)
        stages.append(stage)
        pixels_of = None
        i += 1
        if not layer.binarize_input:
            continue
        j, pool, bn = _skip(layers, i), None, None
        if stage.conv and j < len(layers) and isinstance(layers[j], MaxPool2D):
            pool, j = layers[j], _skip(layers, j + 1)
        if j < len(layers) and isinstance(layers[j], BatchNorm):
            bn, j = layers[j], _skip(layers, j + 1)
        folds_binarize = j < len(layers) and isinstance(layers[j], Binarize)
        if folds_binarize:
            j += 1
        k = _skip(layers, j, (Flatten,))
        next_binarizes = k < len(layers) and _binarizes_input(layers[k])
        if not (folds_binarize or next_binarizes):
            continue  # nothing takes the sign: the float layers that follow run as they are
        stage.threshold = _Threshold(stage, pool, bn)
        stage.alpha = stage.b = None  # folded into the thresholds
        if next_binarizes:
            # the next binary layer takes the packed bits; Flatten and skipped layers in
            # between act on them as identities (the affine weights follow the pixel layout)
            stage.emit_packed = True
            if stage.conv and isinstance(layers[k], BinaryAffine):
                if layers[k].in_features % stage.out_features:
                    raise ValueError(f"pack: {layers[k]!r} cannot follow {stage.description}")
                pixels_of = stage.out_features
            elif stage.conv != isinstance(layers[k], BinaryConv2D):
                stage.emit_packed = False  # an affine feeding a conv: hand over floats
            j = k
        i = j
    return PackedModel(stages, float_bytes, net.outputs)
