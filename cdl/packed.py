"""Packed inference: a trained binarized Sequential as 1-bit weights and XNOR/popcount products.

    packed = net.pack()                  # cdl.packed.pack_model(net)
    packed.predict(x); packed.accuracy(x, t); packed.nbytes; print(packed)

What packing keeps of each layer (bit layout: ``cdl.kernels.binary``):

- BinaryAffine / BinaryConv2D: sign(W) packed into uint64 rows, one per
  output unit, bits along its fan-in (C*KH*KW for a conv, im2col order),
  plus alpha (when scaled) and the bias. A layer that binarizes its input
  computes its +-1 products as int32 with ``binary_matmul`` (a conv through
  packed im2col and the zero-padding correction of ``cdl.binary``). A first
  layer (binarize_input=False) multiplies its real input by the unpacked
  signs: real inputs have no 1-bit form.
- Folding: when a layer's integer products reach a sign -- a following
  Binarize, or the input binarization of the next binary layer -- through an
  optional MaxPool2D (convs) and an optional BatchNorm (Dropout and
  GaussianNoise in between are skipped: they are identities at inference),
  the chain finish -> pool -> BatchNorm -> sign becomes one integer
  threshold per channel, applied to the (pooled) products:
  bit = dot >= t, or dot <= t where the chain decreases (gamma < 0).
  t is found by bisection over the integer range [-n, n], evaluating the
  model's own float arithmetic (``cdl.layers.binary.finish`` and the
  BatchNorm forward in inference mode) at integer products, so the packed
  model reproduces the float model's signs exactly, rounding included,
  where the closed form t = mean - beta * sqrt(var + eps) / gamma could be
  off by one at a tie. Max pooling commutes with the chain because finish is
  nondecreasing (alpha >= 0) and BatchNorm is monotone per channel.
  Between two binary affine layers the activations stay packed: the
  threshold kernel writes bits straight into the next layer's input words.
- Every other layer runs its float forward in inference mode.

Predictions equal those of ``net.predict``: the same signs reach every
layer, and the layers after the last binary product compute with the same
arithmetic on the same (exactly integer) values.
"""
import numpy as np

from cdl import binary as _B
from cdl._checks import check_float, conv_output_hw
from cdl.kernels import binary as _K
from cdl.kernels import conv as _conv
from cdl.layers.binary import Binarize, BinaryAffine, BinaryConv2D, finish
from cdl.layers.dense import Flatten
from cdl.layers.dropout import Dropout, GaussianNoise
from cdl.layers.norm import BatchNorm
from cdl.layers.pool import MaxPool2D

_SKIPPED = (Dropout, GaussianNoise)  # identities at inference


def _nbytes(*arrays):
    return int(sum(a.nbytes for a in arrays if a is not None))


class _Bits:
    """Activations as packed rows (N, W) of n signs: the input of a binary affine layer."""

    def __init__(self, words, n):
        self.words, self.n = words, n


class _FloatStage:
    """A layer run as in the float model (forward in inference mode)."""

    def __init__(self, layer):
        self.layer = layer
        self.nbytes = _nbytes(*layer.params.values(), *layer.buffers.values())

    def run(self, x):
        return self.layer.forward(x, train=False)

    def __repr__(self):
        return f"{self.layer!r}"


class _Threshold:
    """Integer thresholds per channel that replace finish -> [MaxPool2D] -> [BatchNorm] -> sign."""

    def __init__(self, stage, pool, bn):
        self.pool, self.dtype = pool, stage.dtype
        dtype = stage.dtype
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
            p_mid = positive(mid)
            same_as_lo = p_mid == p_lo
            lo = np.where(open_ & same_as_lo, mid, lo)
            hi = np.where(open_ & ~same_as_lo, mid, hi)
        # increasing: +1 from hi on (dot >= hi); decreasing: +1 up to lo (dot <= lo)
        thr = np.where(up, hi, lo)
        # constant channels: always +1 (dot >= -n-1) or never (dot >= n+1)
        thr = np.where(flips, thr, np.where(p_lo, -n - 1, n + 1))
        self.up = np.where(flips, up, True)
        self.thr = thr.astype(np.int32)
        self.nbytes = _nbytes(self.thr, self.up)

    def signs(self, dots):
        """+1/-1 (float) per element of dots (N, F) or (N, F, OH, OW)."""
        z = dots
        if self.pool is not None:
            z = self.pool.forward(dots.astype(np.float32), train=False)
        shape = [1] * z.ndim
        shape[1] = -1
        thr, up = self.thr.reshape(shape), self.up.reshape(shape)
        return np.where(up, z >= thr, z <= thr).astype(self.dtype) * 2 - 1

    def bits(self, dots):
        out = np.empty((dots.shape[0], -(-dots.shape[1] // 64)), dtype=np.uint64)
        _K.threshold_pack(dots, self.thr, self.up, out)
        return _Bits(out, dots.shape[1])


class _BinaryStage:
    """A BinaryAffine or BinaryConv2D with packed weights, and what follows its products."""

    def __init__(self, layer):
        W = layer._latent()
        self.dtype = W.dtype
        self.conv = isinstance(layer, BinaryConv2D)
        self.binarize_input = layer.binarize_input
        rows = W.reshape(W.shape[0], -1) if self.conv else W.T
        self.n = rows.shape[1]
        self.out_features = rows.shape[0]
        self.weights = _B.pack_bits(np.ascontiguousarray(rows))
        self.alpha = layer.alpha()
        self.b = layer.params.get("b")
        self.b = None if self.b is None else self.b.copy()
        if self.conv:
            self.in_channels = layer.in_channels
            self.kernel, self.stride, self.pad = layer.kernel_size, layer.stride, layer.pad
            self._corrections = {}
        else:
            self.in_features = layer.in_features
        self.threshold = None
        self.emit_bits = False
        self.description = repr(layer)

    @property
    def nbytes(self):
        t = self.threshold.nbytes if self.threshold is not None else 0
        return _nbytes(self.weights, self.alpha, self.b) + t

    def _signs_matrix(self, dtype):
        """The +-1 weights in the float layer's layout, for a first layer's real input."""
        signs = _B.unpack_bits(self.weights, self.n, dtype)
        if self.conv:
            return signs.reshape(self.out_features, self.in_channels, *self.kernel)
        return np.ascontiguousarray(signs.T)

    def _dots(self, x):
        """int32 +-1 products for a binarized input (packed bits or real values)."""
        if isinstance(x, _Bits):
            words = x.words
        elif not self.conv:
            words = _B.pack_bits(x.reshape(x.shape[0], -1))
        if not self.conv:
            if words.shape[1] != self.weights.shape[1] or (isinstance(x, _Bits) and x.n != self.n):
                raise ValueError(f"packed {self.description}: input has {words.shape[1]} words per "
                                 f"sample, expected {self.weights.shape[1]} ({self.n} features)")
            dots = np.empty((words.shape[0], self.out_features), dtype=np.int32)
            _K.xnor_gemm(words, self.weights, self.n, dots)
            return dots
        hw = x.shape[2:]
        corr = self._corrections.get(hw)
        if corr is None:
            corr = _B.padding_correction(self._signs_matrix(np.float64), hw, self.stride, self.pad)
            self._corrections[hw] = corr
        return _B.conv2d_packed(x, self.weights, self.kernel, self.stride, self.pad, corr)

    def _check(self, x):
        if isinstance(x, _Bits):
            return x
        if self.conv:
            x = check_float(f"packed {self.description}", x, ndim=4, layout="(N, C, H, W)")
            if x.shape[1] != self.in_channels:
                raise ValueError(f"packed {self.description}: input of shape {x.shape} has "
                                 f"{x.shape[1]} channels, expected {self.in_channels}")
            conv_output_hw(f"packed {self.description}", x.shape[2:], self.kernel, self.stride,
                           self.pad)
            return x
        x = check_float(f"packed {self.description}", x, ndim=range(2, 8))
        if x[0].size != self.in_features:
            raise ValueError(f"packed {self.description}: input of shape {x.shape} has "
                             f"{x[0].size} features per sample, expected {self.in_features}")
        return x

    def run(self, x):
        x = self._check(x)
        if not self.binarize_input:
            # a real input is multiplied in the float layer's compute dtype
            x = x.astype(np.result_type(x.dtype, self.dtype), copy=False)
            if self.conv:
                dot = _conv.conv2d_forward(x, self._signs_matrix(x.dtype), None, self.stride, self.pad)
            else:
                dot = x.reshape(x.shape[0], -1) @ self._signs_matrix(x.dtype)
            return finish(dot, self.alpha, self.b, 1)
        dots = self._dots(x)
        if self.threshold is None:
            return finish(dots.astype(self.dtype), self.alpha, self.b, 1)
        if self.emit_bits:
            return self.threshold.bits(dots)
        return self.threshold.signs(dots)

    def __repr__(self):
        tail = ""
        if self.threshold is not None:
            pool = " after MaxPool2D" if self.threshold.pool is not None else ""
            tail = f" -> integer thresholds{pool}" + (" -> packed bits" if self.emit_bits else "")
        mode = "XNOR-popcount" if self.binarize_input else "real input x unpacked signs"
        return f"packed {self.description} [{mode}]{tail}"


def _consumes_signs(layers, k):
    """True when layers[k] binarizes its input (skipping inference identities and a Flatten)."""
    while k < len(layers) and isinstance(layers[k], _SKIPPED + (Flatten,)):
        k += 1
    if k == len(layers):
        return False
    layer = layers[k]
    if isinstance(layer, Binarize):
        return True
    return isinstance(layer, (BinaryAffine, BinaryConv2D)) and layer.binarize_input


def _next_is_packed_affine(layers, k):
    while k < len(layers) and isinstance(layers[k], _SKIPPED + (Flatten,)):
        k += 1
    return k < len(layers) and isinstance(layers[k], BinaryAffine) and layers[k].binarize_input


def _skip(layers, k):
    while k < len(layers) and isinstance(layers[k], _SKIPPED):
        k += 1
    return k


class PackedModel:
    """Inference-only model of packed stages (see the module doc); built by ``pack_model``."""

    def __init__(self, stages, float_bytes):
        self.stages = stages
        self.float_bytes = float_bytes

    def forward(self, x):
        """Scores for x, as ``Sequential.forward(x, train=False)`` gives them."""
        out = x
        for stage in self.stages:
            out = stage.run(out)
        if isinstance(out, _Bits):
            out = _B.unpack_bits(out.words, out.n)
        return out

    def predict(self, x, batch_size=None):
        if batch_size is None or len(x) <= batch_size:
            return self.forward(x)
        return np.concatenate([self.forward(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)])

    def accuracy(self, x, t, batch_size=1000):
        """Fraction of samples whose arg-max prediction equals the label (labels or one-hot)."""
        y = self.predict(x, batch_size)
        t = np.asarray(t)
        labels = t.argmax(axis=1) if t.ndim == 2 else t
        if len(labels) != len(y):
            raise ValueError(f"PackedModel.accuracy: {len(labels)} labels for {len(y)} samples")
        return float((y.argmax(axis=1) == labels).mean())

    @property
    def nbytes(self):
        """Bytes of everything the packed model stores (weights, thresholds, float layers)."""
        return int(sum(s.nbytes for s in self.stages))

    def summary(self):
        """[(stage, bytes)] and the float model's bytes, for reports."""
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
    stages, i = [], 0
    while i < len(layers):
        layer = layers[i]
        if not isinstance(layer, (BinaryAffine, BinaryConv2D)):
            stages.append(_FloatStage(layer))
            i += 1
            continue
        stage = _BinaryStage(layer)
        stages.append(stage)
        i += 1
        if not layer.binarize_input:
            continue
        j, pool, bn = _skip(layers, i), None, None
        if stage.conv and j < len(layers) and isinstance(layers[j], MaxPool2D):
            pool, j = layers[j], _skip(layers, j + 1)
        if j < len(layers) and isinstance(layers[j], BatchNorm):
            bn, j = layers[j], _skip(layers, j + 1)
        if not _consumes_signs(layers, j):
            continue
        if j < len(layers) and isinstance(layers[j], Binarize):
            j += 1  # folded into the threshold
        stage.threshold = _Threshold(stage, pool, bn)
        stage.alpha = stage.b = None  # folded into the thresholds
        stage.emit_bits = not stage.conv and _next_is_packed_affine(layers, j)
        while stage.emit_bits and isinstance(layers[j], _SKIPPED + (Flatten,)):
            j += 1  # identities on (N, F) bits: the next stage takes them as they are
        i = j
    return PackedModel(stages, float_bytes)
