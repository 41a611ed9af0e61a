"""Bad input across cdl's public surface, as one table: each case a clear exception.

Every public layer, op, bit op, loader, model builder, optimizer, the Trainer and the
command line get wrong ndim, wrong dtypes, empty and zero-sized arrays, absurd or
int32-overflowing sizes, negative or zero hyperparameters and non-arrays. Each row is
(callable, exception type, regex of the message); the regex names the layer or function
that complained, so a user finds the bad call without a debugger. No case allocates
more than a few kilobytes: absurd sizes are hyperparameters on tiny arrays, refused
before anything is allocated.

Inputs that cdl only reads (a forward's x, a backward's dout) may be non-contiguous,
Fortran-ordered or read-only: those are a second table, checked against the result on
a plain C-contiguous copy (never a wrong result). NaN and Inf in a forward propagate as
in NumPy and PyTorch (a third table: never swallowed into a finite number).

``test_the_catalogue_is_large`` prints how many cases ran.
"""
import contextlib
import os
import re

import numpy as np
import pytest

import cdl
from cdl import Sequential, Trainer, layers as L, models, ops, optim
import cdl.binary as B
from cdl.data import (DataLoader, channel_stats, load_cifar10, load_digits, load_mnist,
                      read_cifar_batch, read_idx)
from cdl.data import augment as A

F32 = np.float32


def _r(*shape, dtype=F32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


# -- layers: (factory, a good input shape) ----------------------------------------------
LAYERS = {
    "Affine": (lambda: L.Affine(4, 3, rng=0), (2, 4)),
    "Flatten": (lambda: L.Flatten(), (2, 3, 2)),
    "Conv2D": (lambda: L.Conv2D(2, 3, 3, pad=1, rng=0), (2, 2, 5, 5)),
    "MaxPool2D": (lambda: L.MaxPool2D(2), (2, 2, 4, 4)),
    "AvgPool2D": (lambda: L.AvgPool2D(2), (2, 2, 4, 4)),
    "GlobalAvgPool2D": (lambda: L.GlobalAvgPool2D(), (2, 2, 4, 4)),
    "ReLU": (lambda: L.ReLU(), (2, 3)),
    "LeakyReLU": (lambda: L.LeakyReLU(0.1), (2, 3)),
    "Sigmoid": (lambda: L.Sigmoid(), (2, 3)),
    "Tanh": (lambda: L.Tanh(), (2, 3)),
    "Step": (lambda: L.Step(), (2, 3)),
    "Softmax": (lambda: L.Softmax(), (2, 3)),
    "BatchNorm": (lambda: L.BatchNorm(3), (4, 3)),
    "Dropout": (lambda: L.Dropout(0.5, rng=0), (2, 3)),
    "DropConnect": (lambda: L.DropConnect(L.Affine(4, 3, rng=0), 0.5, rng=0), (2, 4)),
    "GaussianNoise": (lambda: L.GaussianNoise(0.1, rng=0), (2, 3)),
    "Binarize": (lambda: L.Binarize(), (2, 3)),
    "BinaryAffine": (lambda: L.BinaryAffine(4, 3, rng=0), (2, 4)),
    "BinaryConv2D": (lambda: L.BinaryConv2D(2, 3, 3, pad=1, rng=0), (2, 2, 5, 5)),
    "Chain": (lambda: L.Chain(L.Affine(4, 3, rng=0), L.ReLU()), (2, 4)),
    "Residual": (lambda: L.Residual(L.Affine(4, 4, rng=0), L.ReLU()), (2, 4)),
    "Concat": (lambda: L.Concat(L.Affine(4, 3, rng=0), L.Affine(4, 2, rng=1)), (2, 4)),
}
# (shape with a wrong number of dimensions) for the layers that fix it
WRONG_NDIM = {"Conv2D": (2, 5, 5), "MaxPool2D": (2, 2, 4), "AvgPool2D": (2, 4, 4, 4, 1),
              "GlobalAvgPool2D": (2, 4), "BinaryConv2D": (2, 2, 5), "BatchNorm": (4, 3, 2),
              "Affine": (4,), "BinaryAffine": (4,), "Flatten": (4,), "ReLU": (),
              "Softmax": (), "Chain": (4,), "Residual": (4,), "Concat": (4,)}
# (shape of the right ndim but a wrong size) where the layer knows its sizes
WRONG_SIZE = {"Affine": ((2, 5), r"5 features per sample, expected 4"),
              "BinaryAffine": ((2, 5), r"BinaryAffine.*5"),
              "Conv2D": ((2, 3, 5, 5), r"Conv2D.*3 channels.*expected 2|Conv2D.*in_channels"),
              "BinaryConv2D": ((2, 3, 5, 5), r"BinaryConv2D.*3"),
              "BatchNorm": ((4, 5), r"BatchNorm.*5.*3|BatchNorm.*3.*5"),
              "MaxPool2D": ((2, 2, 1, 1), r"MaxPool2D: kernel 2x2 is larger than the padded"),
              "AvgPool2D": ((2, 2, 1, 4), r"AvgPool2D: kernel 2x2 is larger than the padded"),
              "DropConnect": ((2, 5), r"DropConnect|Affine"),
              "Chain": ((2, 5), r"Affine"), "Concat": ((2, 5), r"Affine")}

CASES = []


def case(id, call, exc, match, xfail=None):
    """One row; ``xfail`` is the reason of a known bug in a module this file cannot fix."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    CASES.append(pytest.param(call, exc, _named(match), id=id, marks=marks))


def _named(match):
    """A leading "Who: " of a pattern also matches "Who(its config): " (layers name themselves
    with their arguments)."""
    return re.sub(r"^([\w.|]+): ", r"(?:\1)\\b[^:\\n]*: ", match)


def _forward(name, x, train=True):
    return lambda: LAYERS[name][0]().forward(x, train=train)


# containers let the child that complains name itself
WHO = {"Chain": "Chain|Affine|ReLU", "Residual": "Residual|Affine|ReLU",
       "Concat": "Concat|Affine", "DropConnect": "DropConnect|Affine"}

for _name, (_make, _shape) in LAYERS.items():
    _who = WHO.get(_name, _name)
    for _dt in (np.int32, np.uint8, np.float16, np.bool_, np.complex64):
        case(f"{_name}-{np.dtype(_dt).name}", _forward(_name, np.zeros(_shape, _dt)),
             ValueError, rf"{_who}.*float32 or float64, got {np.dtype(_dt).name}")
    case(f"{_name}-list", _forward(_name, np.zeros(_shape, F32).tolist()), ValueError,
         rf"{_who}: input must be a NumPy array, got list")
    case(f"{_name}-empty-batch", _forward(_name, np.zeros((0, *_shape[1:]), F32)), ValueError,
         rf"{_who}: empty batch")
    case(f"{_name}-zero-sized-dim", _forward(_name, np.zeros((*_shape[:-1], 0), F32)),
         ValueError, rf"{_who}.*zero-sized dimension")
    if _name in WRONG_NDIM:
        case(f"{_name}-ndim", _forward(_name, np.zeros(WRONG_NDIM[_name], F32)), ValueError,
             rf"{_who}: expected .*-D.*got shape")
    if _name in WRONG_SIZE:
        _s, _m = WRONG_SIZE[_name]
        case(f"{_name}-size", _forward(_name, _r(*_s)), ValueError, _m)
    case(f"{_name}-backward-before-forward", lambda m=_make, s=_shape: m().backward(_r(*s)),
         RuntimeError, rf"{_who}.*backward called before forward")


def _backward(name, dout_of):
    """forward on a good input, then backward(dout_of(y))."""
    def call():
        layer = LAYERS[name][0]()
        y = layer.forward(_r(*LAYERS[name][1]), train=True)
        layer.backward(dout_of(y))
    return call


for _name in LAYERS:
    _who = WHO.get(_name, _name)
    case(f"{_name}-dout-shape", _backward(_name, lambda y: np.zeros((y.shape[0] + 1,
                                                                     *y.shape[1:]), F32)),
         ValueError, rf"{_who}.*dout has shape")
    case(f"{_name}-dout-int", _backward(_name, lambda y: np.zeros(y.shape, np.int64)),
         ValueError, rf"{_who}.*dout must be float32 or float64")

# -- layer hyperparameters: zero, negative, non-integer, absurd ------------------------
for _id, _call, _m in [
    ("Affine-in-0", lambda: L.Affine(0, 3), r"Affine: in_features must be a positive int"),
    ("Affine-out-neg", lambda: L.Affine(3, -1), r"Affine: out_features must be a positive"),
    ("Affine-float", lambda: L.Affine(2.5, 3), r"Affine: in_features .* got 2\.5"),
    ("Affine-bool", lambda: L.Affine(True, 3), r"Affine: in_features .* got True"),
    ("Affine-str", lambda: L.Affine("4", 3), r"Affine: in_features .* got '4'"),
    ("Conv2D-kernel-0", lambda: L.Conv2D(1, 1, 0), r"Conv2D: kernel"),
    ("Conv2D-stride-0", lambda: L.Conv2D(1, 1, 3, stride=0), r"Conv2D: stride"),
    ("Conv2D-pad-neg", lambda: L.Conv2D(1, 1, 3, pad=-1), r"Conv2D: pad"),
    ("Conv2D-kernel-2^31", lambda: L.Conv2D(1, 1, (1, 2**31)), r"Conv2D: kernel.*too large"),
    ("Conv2D-stride-2^31", lambda: L.Conv2D(1, 1, 1, stride=2**31), r"Conv2D: stride.*too large"),
    ("Conv2D-kernel-triple", lambda: L.Conv2D(1, 1, (1, 2, 3)), r"Conv2D: kernel"),
    ("Conv2D-channels-0", lambda: L.Conv2D(0, 1, 3), r"Conv2D: in_channels"),
    ("MaxPool2D-0", lambda: L.MaxPool2D(0), r"MaxPool2D: pool"),
    ("MaxPool2D-stride-0", lambda: L.MaxPool2D(2, stride=0), r"MaxPool2D: stride"),
    ("MaxPool2D-pad-neg", lambda: L.MaxPool2D(2, pad=-1), r"MaxPool2D: pad"),
    ("AvgPool2D-float", lambda: L.AvgPool2D(1.5), r"AvgPool2D: pool"),
    ("BatchNorm-0", lambda: L.BatchNorm(0), r"BatchNorm: num_features"),
    ("BatchNorm-momentum", lambda: L.BatchNorm(3, momentum=1.5), r"BatchNorm: momentum"),
    ("BatchNorm-eps-0", lambda: L.BatchNorm(3, eps=0.0), r"BatchNorm: eps"),
    ("BatchNorm-eps-nan", lambda: L.BatchNorm(3, eps=float("nan")), r"BatchNorm: eps"),
    ("Dropout-1", lambda: L.Dropout(1.0), r"Dropout: ratio"),
    ("Dropout-neg", lambda: L.Dropout(-0.1), r"Dropout: ratio"),
    ("Dropout-nan", lambda: L.Dropout(float("nan")), r"Dropout: ratio"),
    ("DropConnect-ratio", lambda: L.DropConnect(L.Affine(2, 2), 1.0), r"DropConnect: ratio"),
    ("DropConnect-no-W", lambda: L.DropConnect(L.ReLU()), r"DropConnect"),
    ("GaussianNoise-neg", lambda: L.GaussianNoise(-1.0), r"GaussianNoise: std"),
    ("GaussianNoise-inf", lambda: L.GaussianNoise(float("inf")), r"GaussianNoise: std"),
    ("LeakyReLU-nan", lambda: L.LeakyReLU(float("nan")), r"LeakyReLU: alpha"),
    ("Binarize-mode", lambda: L.Binarize("sometimes"), r"Binarize: mode"),
    ("BinaryAffine-0", lambda: L.BinaryAffine(0, 3), r"BinaryAffine: in_features"),
    ("BinaryConv2D-kernel-0", lambda: L.BinaryConv2D(1, 1, 0), r"BinaryConv2D: kernel"),
    ("Concat-empty", lambda: L.Concat(), r"Concat"),
    ("Sequential-not-a-layer", lambda: Sequential([L.ReLU(), "relu"]), r"Sequential"),
]:
    case(_id, _call, (ValueError, TypeError), _m)
case("Residual-not-a-layer", lambda: L.Residual(3), ValueError, r"Residual: expected a cdl Layer")

# sizes that pass every per-argument check but whose products overflow: refused from the
# hyperparameters, before an allocation the size of the output
for _id, _call, _m in [
    ("Conv2D-output-2^31", lambda: L.Conv2D(1, 1, 1, pad=2**30).forward(_r(1, 1, 1, 1)),
     r"Conv2D: output of 2147483649x2147483649 pixels .* too large"),
    ("Conv2D-kernel-larger", lambda: L.Conv2D(1, 1, 5).forward(_r(1, 1, 3, 3)),
     r"Conv2D: kernel 5x5 is larger than the padded input 3x3"),
    ("MaxPool2D-output-2^31", lambda: L.MaxPool2D(1, pad=2**30).forward(_r(1, 1, 1, 1)),
     r"MaxPool2D: .*(too large|pad)"),
    ("AvgPool2D-output-2^31", lambda: L.AvgPool2D(1, stride=1, pad=2**30).forward(_r(1, 1, 1, 1)),
     r"AvgPool2D: .*(too large|pad)"),
    ("BinaryConv2D-output-2^31",
     lambda: L.BinaryConv2D(1, 1, 1, pad=2**30).forward(_r(1, 1, 1, 1)),
     r"BinaryConv2D: .*too large"),
]:
    case(_id, _call, ValueError, _m)

# -- losses ----------------------------------------------------------------------------
_y = _r(3, 4)
for _id, _call, _m in [
    ("SCE-labels-out-of-range", lambda: L.SoftmaxCrossEntropy().forward(_y, np.array([0, 1, 4])),
     r"SoftmaxCrossEntropy.*label"),
    ("SCE-negative-label", lambda: L.SoftmaxCrossEntropy().forward(_y, np.array([0, -1, 2])),
     r"SoftmaxCrossEntropy.*label"),
    ("SCE-float-labels-1d", lambda: L.SoftmaxCrossEntropy().forward(_y, np.array([0., 1, 2])),
     r"SoftmaxCrossEntropy"),
    ("SCE-batch-mismatch", lambda: L.SoftmaxCrossEntropy().forward(_y, np.array([0, 1])),
     r"SoftmaxCrossEntropy.*\(2,\).*|SoftmaxCrossEntropy.*3"),
    ("SCE-scores-1d", lambda: L.SoftmaxCrossEntropy().forward(_r(4), np.array([0])),
     r"SoftmaxCrossEntropy: expected 2-D"),
    ("SCE-scores-int", lambda: L.SoftmaxCrossEntropy().forward(np.zeros((3, 4), int),
                                                              np.array([0, 1, 2])),
     r"SoftmaxCrossEntropy: scores must be float32 or float64"),
    ("SCE-targets-complex", lambda: L.SoftmaxCrossEntropy().forward(_y, np.zeros((3, 4), complex)),
     r"SoftmaxCrossEntropy"),
    ("SCE-labels-2d-int", lambda: L.SoftmaxCrossEntropy().forward(_y, np.zeros((3, 1), int)),
     r"SoftmaxCrossEntropy"),
    ("SCE-backward-first", lambda: L.SoftmaxCrossEntropy().backward(), r"SoftmaxCrossEntropy"),
    ("MSE-shape", lambda: L.MeanSquaredError().forward(_y, _r(3, 5)), r"MeanSquaredError"),
    ("MSE-str-targets", lambda: L.MeanSquaredError().forward(_y, np.full((3, 4), "a")),
     r"MeanSquaredError: targets must be numbers"),
    ("MSE-backward-first", lambda: L.MeanSquaredError().backward(), r"MeanSquaredError"),
    ("SigCE-shape", lambda: L.SigmoidCrossEntropy().forward(_y, _r(3, 5)), r"SigmoidCrossEntropy"),
    ("SigCE-targets-2", lambda: L.SigmoidCrossEntropy().forward(_y, np.full((3, 4), 2.0, F32)),
     r"SigmoidCrossEntropy"),
]:
    case(_id, _call, (ValueError, RuntimeError), _m)

# -- cdl.ops ---------------------------------------------------------------------------
_x4 = _r(1, 1, 4, 4)
for _id, _call, _m in [
    ("im2col-3d", lambda: ops.im2col(_r(1, 4, 4), 2, 2), r"im2col: expected 4-D"),
    ("im2col-5d", lambda: ops.im2col(_r(1, 1, 1, 4, 4), 2, 2), r"im2col: expected 4-D"),
    ("im2col-int", lambda: ops.im2col(np.zeros((1, 1, 4, 4), int), 2, 2),
     r"im2col: input must be float32 or float64"),
    ("im2col-float16", lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float16), 2, 2),
     r"im2col: input must be float32 or float64"),
    ("im2col-list", lambda: ops.im2col(np.zeros((1, 1, 4, 4)).tolist(), 2, 2),
     r"im2col: input must be a NumPy array"),
    ("im2col-empty", lambda: ops.im2col(np.zeros((0, 1, 4, 4), F32), 2, 2), r"im2col: empty"),
    ("im2col-zero-width", lambda: ops.im2col(np.zeros((1, 1, 4, 0), F32), 1, 1),
     r"im2col: .*zero-sized"),
    ("im2col-kernel-0", lambda: ops.im2col(_x4, 0, 2), r"im2col: kernel size"),
    ("im2col-kernel-neg", lambda: ops.im2col(_x4, 2, -2), r"im2col: kernel size"),
    ("im2col-kernel-large", lambda: ops.im2col(_x4, 5, 5), r"im2col: kernel 5x5 is larger"),
    ("im2col-stride-0", lambda: ops.im2col(_x4, 2, 2, stride=0), r"im2col: stride"),
    ("im2col-stride-pair-3", lambda: ops.im2col(_x4, 2, 2, stride=(1, 1, 1)), r"im2col: stride"),
    ("im2col-stride-str", lambda: ops.im2col(_x4, 2, 2, stride="1"), r"im2col: stride"),
    ("im2col-pad-neg", lambda: ops.im2col(_x4, 2, 2, pad=(0, -1)), r"im2col: pad"),
    ("im2col-pad-float", lambda: ops.im2col(_x4, 2, 2, pad=0.5), r"im2col: pad"),
    ("im2col-kernel-2^31", lambda: ops.im2col(_x4, 2**31, 1), r"im2col: kernel size.*too large"),
    ("im2col-output-2^31", lambda: ops.im2col(_x4, 1, 1, pad=2**30), r"im2col: output.*too large"),
    ("col2im-shape", lambda: ops.col2im(np.zeros((5, 4), F32), (1, 1, 4, 4), 2, 2),
     r"col2im: col of shape \(5, 4\) does not match"),
    ("col2im-xshape-3", lambda: ops.col2im(np.zeros((9, 4), F32), (1, 4, 4), 2, 2),
     r"col2im: x_shape"),
    ("col2im-xshape-neg", lambda: ops.col2im(np.zeros((9, 4), F32), (1, -1, 4, 4), 2, 2),
     r"col2im: x_shape\[1\]"),
    ("col2im-xshape-none", lambda: ops.col2im(np.zeros((9, 4), F32), None, 2, 2),
     r"col2im: x_shape"),
    ("col2im-col-3d", lambda: ops.col2im(np.zeros((9, 4, 1), F32), (1, 1, 4, 4), 2, 2),
     r"col2im: expected 2-D col"),
    ("col2im-col-int", lambda: ops.col2im(np.zeros((9, 4), int), (1, 1, 4, 4), 2, 2),
     r"col2im: col must be float32 or float64"),
    ("col2im-rows-2^31", lambda: ops.col2im(np.zeros((9, 4), F32), (1, 1, 4, 4), 1, 1,
                                            pad=2**15), r"col2im: .*(too large|does not match)"),
]:
    case(_id, _call, ValueError, _m)

# each side fits a C int, but the products pass 2^31: OH*OW windows of a 4x4 image with pad
# 2^15 (a 16 GiB im2col), KH*KW taps of a 2^16 x 2^16 kernel on a 1x1 image (the guard of
# the test makes such an allocation fail instead of filling the memory)
for _id, _call, _m in [
    ("im2col-rows-2^31", lambda: ops.im2col(_x4, 1, 1, pad=2**15),
     r"im2col: output of 32772x32772 = 1073997984|im2col: output of 65540x65540 = \d+ positions"),
    ("im2col-taps-2^32", lambda: ops.im2col(_r(1, 1, 1, 1), 2**16, 2**16, pad=2**15),
     r"im2col: kernel of 65536x65536 = 4294967296 positions .* too large"),
    ("col2im-taps-2^32", lambda: ops.col2im(np.zeros((1, 1), F32), (1, 1, 1, 1), 2**16, 2**16,
                                            pad=2**15), r"col2im: kernel of 65536x65536"),
    ("Conv2D-rows-2^31", lambda: L.Conv2D(1, 1, 1, pad=2**15).forward(_r(1, 1, 1, 1)),
     r"Conv2D\b.*: output of 65537x65537 = 4295098369 positions .* too large"),
    ("MaxPool2D-rows-2^31", lambda: L.MaxPool2D(1, pad=2**15).forward(_r(1, 1, 1, 1)),
     r"MaxPool2D.*(too large|pad)"),
]:
    case(_id, _call, ValueError, _m)

# -- cdl.binary (bit ops) --------------------------------------------------------------
_p = B.pack_bits(_r(2, 70))
for _id, _call, _m in [
    ("pack_bits-complex", lambda: B.pack_bits(np.zeros((2, 3), complex)), r"pack_bits"),
    ("pack_bits-str", lambda: B.pack_bits(np.full((2, 3), "a")), r"pack_bits"),
    ("pack_bits-0d", lambda: B.pack_bits(np.float32(1.0)), r"pack_bits"),
    ("pack_bits-list", lambda: B.pack_bits([[1.0, -1.0]]), r"pack_bits"),
    ("pack_bits-empty-row", lambda: B.pack_bits(np.zeros((2, 0), F32)), r"pack_bits"),
    ("unpack_bits-n-too-large", lambda: B.unpack_bits(_p, 129), r"unpack_bits"),
    ("unpack_bits-n-0", lambda: B.unpack_bits(_p, 0), r"unpack_bits"),
    ("unpack_bits-not-uint64", lambda: B.unpack_bits(_p.astype(np.int64), 70), r"unpack_bits"),
    ("unpack_bits-dtype", lambda: B.unpack_bits(_p, 70, dtype=np.int8), r"unpack_bits"),
    ("binary_matmul-width", lambda: B.binary_matmul(_p, _p[:, :1].copy(), 70), r"binary_matmul"),
    ("binary_matmul-n-too-large", lambda: B.binary_matmul(_p, _p, 129), r"binary_matmul"),
    ("binary_matmul-n-too-small", lambda: B.binary_matmul(_p, _p, 64), r"binary_matmul"),
    ("binary_matmul-n-0", lambda: B.binary_matmul(_p, _p, 0), r"binary_matmul"),
    ("binary_matmul-n-2^40", lambda: B.binary_matmul(_p, _p, 2**40), r"binary_matmul"),
    ("binary_matmul-int64", lambda: B.binary_matmul(_p.astype(np.int64), _p, 70),
     r"binary_matmul"),
    ("binary_matmul-1d", lambda: B.binary_matmul(_p[0], _p, 70), r"binary_matmul"),
    ("binary_matmul-float", lambda: B.binary_matmul(_r(2, 2), _p, 70), r"binary_matmul"),
]:
    case(_id, _call, ValueError, _m)

# -- optimizers ------------------------------------------------------------------------
_OPTS = {"SGD": optim.SGD, "Momentum": optim.Momentum, "Nesterov": optim.Nesterov,
         "AdaGrad": optim.AdaGrad, "AdaDelta": optim.AdaDelta, "RMSProp": optim.RMSProp,
         "Adam": optim.Adam}
for _name, _cls in _OPTS.items():
    for _lr in (-0.1, float("nan"), float("inf"), "0.1", None):
        case(f"{_name}-lr-{_lr}", lambda c=_cls, v=_lr: c(lr=v), ValueError, rf"{_name}: lr")
    case(f"{_name}-keys", lambda c=_cls: c().update({"W": _r(2)}, {"V": _r(2)}), ValueError,
         rf"{_name}.update: params and grads keys differ")
    case(f"{_name}-grad-shape", lambda c=_cls: c().update({"W": _r(2)}, {"W": _r(3)}),
         ValueError, rf"{_name}.update: grad 'W' has shape \(3,\), param has \(2,\)")
    case(f"{_name}-int-param", lambda c=_cls: c().update({"W": np.zeros(2, int)},
                                                          {"W": np.zeros(2, int)}),
         ValueError, rf"{_name}.update: param 'W' must be a contiguous float")
    case(f"{_name}-grad-complex", lambda c=_cls: c().update({"W": _r(2)},
                                                            {"W": np.zeros(2, complex)}),
         ValueError, rf"{_name}.update: grad 'W' must be a real array, got complex128")
    case(f"{_name}-grad-list", lambda c=_cls: c().update({"W": _r(2)}, {"W": [0.0, 0.0]}),
         ValueError, rf"{_name}.*grad")


def _read_only(a):
    a.flags.writeable = False
    return a


for _name, _cls in _OPTS.items():
    # a NumPy user who froze an array expects the in-place update to refuse it by name
    case(f"{_name}-read-only-param",
         lambda c=_cls: c().update({"W": _read_only(_r(2))}, {"W": _r(2)}),
         ValueError, rf"{_name}.update: param 'W' is read-only")
for _id, _call, _m in [
    ("Momentum-momentum-neg", lambda: optim.Momentum(momentum=-0.1), r"Momentum: momentum"),
    ("Momentum-momentum-1.5", lambda: optim.Momentum(momentum=1.5), r"Momentum: momentum"),
    ("Nesterov-momentum-nan", lambda: optim.Nesterov(momentum=float("nan")), r"Nesterov: momentum"),
    ("Adam-beta1-1", lambda: optim.Adam(beta1=1.0), r"Adam: beta1"),
    ("Adam-beta2-neg", lambda: optim.Adam(beta2=-0.5), r"Adam: beta2"),
    ("Adam-eps-neg", lambda: optim.Adam(eps=-1e-8), r"Adam: eps"),
    ("RMSProp-rho-1.5", lambda: optim.RMSProp(rho=1.5), r"RMSProp: rho"),
    ("AdaDelta-rho-neg", lambda: optim.AdaDelta(rho=-0.1), r"AdaDelta: rho"),
    ("AdaGrad-eps-0", lambda: optim.AdaGrad(eps=0.0), r"AdaGrad: eps"),
    ("LBFGS-memory-0", lambda: optim.LBFGS(memory=0), r"LBFGS: memory"),
    ("BFGS-max_iter-neg", lambda: optim.BFGS(max_iter=-1), r"BFGS: max_iter"),
    ("Newton-gtol-neg", lambda: optim.Newton(gtol=-1.0), r"Newton: gtol"),
    ("GradClip-both-none", lambda: optim.GradClip(optim.SGD()), r"GradClip"),
    ("GradClip-norm-neg", lambda: optim.GradClip(optim.SGD(), max_norm=-1.0), r"GradClip"),
    ("clip_grad_norm-neg", lambda: optim.clip_grad_norm({"W": _r(2)}, -1.0), r"clip_grad_norm"),
    ("StepLR-step-0", lambda: optim.StepLR(0), r"StepLR: step"),
    ("ExponentialLR-gamma-neg", lambda: optim.ExponentialLR(-0.5), r"ExponentialLR: gamma"),
    ("CosineLR-total-0", lambda: optim.CosineLR(0), r"CosineLR: total"),
    ("EMA-decay-1.5", lambda: optim.EMA(1.5), r"EMA: decay"),
    ("WeightDecay-neg", lambda: optim.WeightDecay(l2=-1.0), r"WeightDecay: l2"),
]:
    case(_id, _call, ValueError, _m)

# -- model builders --------------------------------------------------------------------
for _id, _call, _m in [
    ("DeepConvNet-tiny-input", lambda: models.DeepConvNet(input_shape=(1, 2, 2), rng=0),
     r"DeepConvNet"),
    ("DeepConvNet-classes-0", lambda: models.DeepConvNet(num_classes=0, rng=0), r"DeepConvNet"),
    ("DeepConvNet-shape-2d", lambda: models.DeepConvNet(input_shape=(28, 28), rng=0),
     r"DeepConvNet"),
    ("DeepConvNet-channels-0", lambda: models.DeepConvNet(input_shape=(0, 28, 28), rng=0),
     r"DeepConvNet"),
    ("DeepConvNet-dropout", lambda: models.DeepConvNet(dropout=1.0, rng=0), r"Dropout|DeepConvNet"),
    ("SimpleConvNet-kernel-0", lambda: models.SimpleConvNet(kernel_size=0, rng=0),
     r"SimpleConvNet|Conv2D"),
    ("SimpleConvNet-filters-neg", lambda: models.SimpleConvNet(filters=-3, rng=0),
     r"SimpleConvNet|Conv2D"),
    ("ResNet-blocks-0", lambda: models.ResNet(blocks=0, rng=0), r"ResNet"),
    ("ResNet-channels-empty", lambda: models.ResNet(channels=(), rng=0), r"ResNet"),
    ("VGG-depth-7", lambda: models.VGG(depth=7, rng=0), r"VGG"),
    ("VGG-width-0", lambda: models.VGG(width=0.0, rng=0), r"VGG"),
    ("AlexNet-hidden-0", lambda: models.AlexNet(hidden=0, rng=0), r"AlexNet|Affine"),
    ("GoogLeNet-width-neg", lambda: models.GoogLeNet(width=-1.0, rng=0), r"GoogLeNet"),
    ("BinaryMLP-hidden-0", lambda: models.BinaryMLP(hidden=(0,), rng=0),
     r"BinaryMLP|BinaryAffine"),
    ("BinaryConvNet-classes-neg", lambda: models.BinaryConvNet(num_classes=-1, rng=0),
     r"BinaryConvNet|BinaryAffine|Affine"),
]:
    case(_id, _call, ValueError, _m)

# -- Trainer, DataLoader, Sequential ---------------------------------------------------
_xd, _td = _r(8, 1, 8, 8), np.arange(8) % 10


def _net():
    return models.mlp(hidden=(4,), rng=0)


def _fit(x, t, **kw):
    return lambda: Trainer(_net(), optim.SGD(), batch_size=4, epochs=1, verbose=False,
                           progress=False, **kw).fit(x, t)


for _id, _call, _exc, _m in [
    ("Trainer-batch-0", lambda: Trainer(_net(), optim.SGD(), batch_size=0), ValueError,
     r"Trainer: batch_size"),
    ("Trainer-epochs-neg", lambda: Trainer(_net(), optim.SGD(), epochs=-1), ValueError,
     r"Trainer: epochs"),
    ("Trainer-precision", lambda: Trainer(_net(), optim.SGD(), precision="float8"), ValueError,
     r"Trainer: precision"),
    ("Trainer-device", lambda: Trainer(_net(), optim.SGD(), device="tpu"), ValueError,
     r"Trainer: device"),
    ("Trainer-no-optimizer", lambda: Trainer(_net(), "sgd"), (ValueError, TypeError),
     r"Trainer: optimizer"),
    ("Trainer-lengths", _fit(_xd, _td[:5]), ValueError, r"Trainer|fit"),
    ("Trainer-int-x", _fit(np.zeros((8, 1, 8, 8), int), _td), ValueError,
     r"float32 or float64"),
    ("Trainer-label-10", _fit(_xd, np.full(8, 10)), ValueError, r"label"),
    ("Trainer-nan-x", _fit(np.full((8, 1, 8, 8), np.nan, F32), _td), (ValueError,
                                                                      FloatingPointError),
     r"NaN|finite|nan"),
    ("Trainer-wrong-shape", _fit(_r(8, 1, 9, 9), _td), ValueError, r"Affine|input"),
    ("Trainer-empty", _fit(np.zeros((0, 1, 8, 8), F32), np.zeros(0, int)), ValueError,
     r"empty|no samples|0 samples"),
    ("DataLoader-batch-0", lambda: DataLoader(_xd, _td, batch_size=0), ValueError,
     r"DataLoader: batch_size"),
    ("DataLoader-lengths", lambda: DataLoader(_xd, _td[:3]), ValueError, r"DataLoader"),
    ("Sequential-loss-before-forward", lambda: Sequential([L.ReLU()],
                                                          loss=L.SoftmaxCrossEntropy()).backward(),
     (RuntimeError, ValueError), r"backward"),
    ("Sequential-no-loss", lambda: Sequential([L.ReLU()]).loss(_r(2, 3), np.array([0, 1])),
     (RuntimeError, ValueError), r"loss"),
]:
    case(_id, _call, _exc, _m)

# -- the rest of the public surface: tune, ONNX export, binary conv, augmentation, seeds --
for _id, _call, _exc, _m in [
    ("search-method", lambda: cdl.tune.search({"a": [1, 2]}, lambda p, r: 1.0, method="bayes"),
     ValueError, r"cdl.tune.search: method"),
    ("search-empty-space", lambda: cdl.tune.search({}, lambda p, r: 1.0), ValueError,
     r"cdl.tune: space"),
    ("search-n_trials-0", lambda: cdl.tune.search({"a": [1, 2]}, lambda p, r: 1.0,
                                                  method="random", n_trials=0),
     ValueError, r"cdl.tune.search: n_trials"),
    ("Uniform-reversed", lambda: cdl.tune.Uniform(2.0, 1.0), ValueError, r"Uniform: needs lo < hi"),
    ("LogUniform-neg", lambda: cdl.tune.LogUniform(-1.0, 1.0), ValueError, r"LogUniform: lo"),
    ("export_onnx-shape-0", lambda: cdl.export_onnx(_net(), os.devnull, input_shape=(0, 8, 8)),
     ValueError, r"export_onnx: input_shape"),
    ("export_onnx-folder", lambda: cdl.export_onnx(_net(), "/nonexistent/cdl/m.onnx",
                                                   input_shape=(1, 8, 8)),
     (ValueError, FileNotFoundError), r"export_onnx"),
    ("binary_conv2d-3d", lambda: B.binary_conv2d(_r(1, 4, 4), _r(1, 1, 3, 3)), ValueError,
     r"binary_conv2d: expected 4-D"),
    ("binary_conv2d-channels", lambda: B.binary_conv2d(_r(1, 2, 4, 4), _r(1, 1, 3, 3)),
     ValueError, r"binary_conv2d: .*2 channels"),
    ("binary_conv2d-kernel", lambda: B.binary_conv2d(_r(1, 1, 2, 2), _r(1, 1, 3, 3)), ValueError,
     r"binary_conv2d: kernel 3x3 is larger"),
    ("binary_conv2d-rows-2^31", lambda: B.binary_conv2d(_r(1, 1, 1, 1), _r(1, 1, 1, 1),
                                                        pad=2**15),
     ValueError, r"binary_conv2d: output of 65537x65537 = \d+ positions"),
    ("channel_stats-1d", lambda: channel_stats(_r(4)), ValueError, r"channel_stats"),
    ("channel_stats-empty", lambda: channel_stats(np.zeros((0, 3, 2, 2), F32)), ValueError,
     r"channel_stats: x must be a non-empty"),
    ("seed-negative", lambda: cdl.seed(-1), ValueError, r"cdl.seed: s must be"),
    ("seed-float", lambda: cdl.seed(1.5), ValueError, r"cdl.seed: s must be"),
    ("seed-str", lambda: cdl.seed("x"), ValueError, r"cdl.seed: s must be"),
    ("Rotation-range", lambda: A.Rotation(-5), ValueError, r"Rotation: degrees"),
    ("Cutout-0", lambda: A.Cutout(0), ValueError, r"Cutout: size"),
    ("MixUp-alpha-0", lambda: A.MixUp(0.0), ValueError, r"MixUp: alpha"),
    ("Translation-2^40", lambda: A.Translation(2**40), ValueError, r"Translation: max_shift"),
    ("HorizontalFlip-p", lambda: A.HorizontalFlip(1.5), ValueError, r"HorizontalFlip: p"),
    ("HorizontalFlip-int", lambda: A.HorizontalFlip()(np.zeros((2, 1, 4, 4), int),
                                                     np.random.default_rng(0)),
     ValueError, r"HorizontalFlip: batch must be float32 or float64"),
    ("predict-wrong-size", lambda: _net().predict(_r(2, 1, 9, 9)), ValueError,
     r"Affine\(64, 4\): input of shape \(2, 81\)"),
    ("accuracy-lengths", lambda: _net().accuracy(_r(4, 1, 8, 8), np.array([0, 1])), ValueError,
     r"accuracy: 2 labels for 4 samples"),
    ("accuracy-label-99", lambda: _net().accuracy(_r(2, 1, 8, 8), np.array([0, 99])), ValueError,
     r"accuracy: labels outside 0\.\.9"),
    ("set_blas_policy", lambda: cdl.set_blas_policy("sometimes"), ValueError,
     r"set_blas_policy: policy"),
    ("init-unknown", lambda: L.Affine(3, 2, init="nope"), ValueError, r"unknown initializer 'nope'"),
]:
    case(_id, _call, _exc, _m)

# -- loaders and files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-files")
    (d / "text.npz").write_text("not a zip")
    (d / "empty").write_bytes(b"")
    (d / "idx-big").write_bytes(b"\0\0\x08\x03" + (2**31).to_bytes(4, "big") * 0
                                + (60000).to_bytes(4, "big") * 3)
    (d / "folder").mkdir()
    return d


FILE_CASES = [
    ("read_idx-missing", lambda d: read_idx(d / "nope"), FileNotFoundError, r"nope"),
    ("read_idx-folder", lambda d: read_idx(d / "folder"), ValueError, r"folder"),
    ("read_idx-empty", lambda d: read_idx(d / "empty"), ValueError, r"empty: not an IDX"),
    ("read_idx-huge-header", lambda d: read_idx(d / "idx-big"), ValueError, r"too large"),
    ("read_idx-bad-gz", lambda d: read_idx(d / "text.npz"), ValueError, r"not an IDX"),
    ("read_cifar_batch-missing", lambda d: read_cifar_batch(d / "nope"), FileNotFoundError,
     r"nope"),
    ("read_cifar_batch-folder", lambda d: read_cifar_batch(d / "folder"), ValueError, r"folder"),
    ("read_cifar_batch-empty", lambda d: read_cifar_batch(d / "empty"), ValueError,
     r"empty: 0 bytes"),
    ("load_mnist-missing", lambda d: load_mnist(path=str(d / "nope")), FileNotFoundError,
     r"MNIST IDX files not found"),
    ("load_cifar10-missing", lambda d: load_cifar10(path=str(d / "nope")), FileNotFoundError,
     r"CIFAR-10 binary files not found"),
    ("load_cifar10-file", lambda d: load_cifar10(path=str(d / "empty")), FileNotFoundError,
     r"CIFAR-10 binary files not found"),
    ("load_digits-test-size", lambda d: load_digits(test_size=-1), ValueError, r"load_digits"),
    ("load_digits-test-size-all", lambda d: load_digits(test_size=10**9), ValueError,
     r"load_digits"),
    ("cdl.load-missing", lambda d: cdl.load(d / "nope.npz"), FileNotFoundError, r"nope"),
    ("cdl.load-text", lambda d: cdl.load(d / "text.npz"), ValueError, r"text\.npz"),
    ("cdl.load-folder", lambda d: cdl.load(d / "folder"), (IsADirectoryError, ValueError),
     r"folder"),
    ("cdl.load-empty", lambda d: cdl.load(d / "empty"), ValueError, r"empty"),
    ("load_checkpoint-missing",
     lambda d: Trainer(_net(), optim.SGD()).load_checkpoint(d / "nope.npz"), FileNotFoundError,
     r"nope"),
    ("load_checkpoint-text",
     lambda d: Trainer(_net(), optim.SGD()).load_checkpoint(d / "text.npz"), ValueError,
     r"text\.npz"),
    ("save-to-missing-folder", lambda d: _net().save(d / "no" / "such" / "m.npz"),
     (ValueError, FileNotFoundError), r"no/such|such"),
]

# -- the command line: status 2 (usage) or 1 (run-time), one line on stderr ------------
CLI_CASES = [
    (["train", "--epochs", "0"], 2, r"--epochs: must be > 0"),
    (["train", "--epochs", "-3"], 2, r"--epochs"),
    (["train", "--epochs", "two"], 2, r"--epochs: not a int"),
    (["train", "--batch-size", "0"], 2, r"--batch-size"),
    (["train", "--lr", "-1"], 2, r"--lr"),
    (["train", "--lr", "nan"], 2, r"--lr"),
    (["train", "--model", "nosuch"], 2, r"--model"),
    (["train", "--optimizer", "lbfgs"], 2, r"--optimizer"),
    (["train", "--data", "imagenet"], 2, r"--data"),
    (["train", "--data", "mnist", "--data-dir", "/nonexistent/cdl"], 2, r"--data-dir"),
    (["train", "--precision", "int8"], 2, r"--precision"),
    (["train", "--save", "/nonexistent/dir/m.npz"], 2, r"--save"),
    (["train", "--checkpoint", "/nonexistent/dir/c.npz"], 2, r"--checkpoint"),
    (["train", "--no-such-option"], 2, r"unrecognized arguments"),
    (["tune", "--trials", "0"], 2, r"--trials"),
    (["tune", "--method", "bayes"], 2, r"--method"),
    (["bench", "--threads", "-1"], 2, r"--threads"),
    (["frobnicate"], 2, r"invalid choice"),
    (["train", "--seed", "x"], 2, r"--seed"),
]


@contextlib.contextmanager
def _at_most_1gib_more():
    """Allocations past 1 GiB more address space fail with MemoryError while inside: a case
    that would allocate the huge output it should have refused fails fast instead of
    filling the machine's memory (and fails: it expects the refusal)."""
    try:
        import resource
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError):  # not Linux: no guard, and no case here needs one
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + (1 << 30)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("call, exc, match", CASES)
def test_bad_input_is_a_clear_exception(call, exc, match):
    with _at_most_1gib_more(), pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("id, call, exc, match", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_files_are_a_clear_exception(files, id, call, exc, match):
    with pytest.raises(exc, match=match):
        call(files)


@pytest.mark.parametrize("argv, status, match", CLI_CASES, ids=[" ".join(c[0]) or "none"
                                                                for c in CLI_CASES])
def test_bad_command_line_is_one_line_and_a_status(argv, status, match, capsys):
    from cdl.cli import main
    try:
        got = main(argv)
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err.strip()
    assert got == status, err
    last = err.splitlines()[-1] if err else ""
    assert "Traceback" not in err and last.startswith(("cdl", "usage")), err
    assert any(re.search(match, line) for line in err.splitlines()), err


# -- inputs cdl only reads: any memory layout, read-only too, gives the same result ----
def _views(shape):
    """(name, view) pairs of one array's values in other layouts, and the plain copy."""
    base = _r(*shape)
    out = {"fortran": np.asfortranarray(base)}
    wide = np.zeros((*shape[:-1], 2 * shape[-1]), F32)
    wide[..., ::2] = base
    out["strided"] = wide[..., ::2]
    rev = base[::-1].copy()
    out["reversed"] = rev[::-1]
    out["read-only"] = _read_only(base.copy())
    bcast = np.broadcast_to(base[:1], shape)  # read-only, zero stride on the batch axis
    return base, out, bcast


LAYOUT_CASES = [(name, kind) for name in LAYERS
                for kind in ("fortran", "strided", "reversed", "read-only", "broadcast")]


@pytest.mark.parametrize("name, kind", LAYOUT_CASES, ids=[f"{n}-{k}" for n, k in LAYOUT_CASES])
def test_any_layout_of_input_and_dout_gives_the_plain_result(name, kind):
    make, shape = LAYERS[name]
    base, views, bcast = _views(shape)
    if kind == "broadcast":
        base, view = np.ascontiguousarray(bcast), bcast
    else:
        view = views[kind]
    want_layer, got_layer = make(), make()
    want = want_layer.forward(base, train=True)
    got = got_layer.forward(view, train=True)
    np.testing.assert_array_equal(got, want)
    dout = _r(*want.shape) + 0.5
    dview = {"fortran": np.asfortranarray(dout), "read-only": _read_only(dout.copy())}.get(
        kind, dout)
    np.testing.assert_array_equal(got_layer.backward(dview), want_layer.backward(dout))
    for k in want_layer.grads:
        np.testing.assert_array_equal(got_layer.grads[k], want_layer.grads[k])
    assert not view.flags.writeable or np.array_equal(view, base)  # input left as it was


OP_LAYOUTS = ["fortran", "strided", "reversed", "read-only"]


@pytest.mark.parametrize("kind", OP_LAYOUTS)
def test_ops_take_any_layout(kind):
    base, views, _ = _views((2, 3, 5, 5))
    np.testing.assert_array_equal(ops.im2col(views[kind], 3, 3, 1, 1),
                                  ops.im2col(base, 3, 3, 1, 1))
    col = ops.im2col(base, 3, 3, 2, 1)
    colv = {"fortran": np.asfortranarray(col), "read-only": _read_only(col.copy()),
            "strided": np.repeat(col, 2, axis=1)[:, ::2], "reversed": col[::-1].copy()[::-1]}[kind]
    np.testing.assert_array_equal(ops.col2im(colv, base.shape, 3, 3, 2, 1),
                                  ops.col2im(col, base.shape, 3, 3, 2, 1))


@pytest.mark.parametrize("kind", OP_LAYOUTS)
def test_bit_ops_take_any_layout(kind):
    base, views, _ = _views((3, 70))
    p = B.pack_bits(base)
    np.testing.assert_array_equal(B.pack_bits(views[kind]), p)
    pv = {"fortran": np.asfortranarray(p), "read-only": _read_only(p.copy()),
          "strided": np.repeat(p, 2, axis=1)[:, ::2], "reversed": p[::-1].copy()[::-1]}[kind]
    for fn, want in ((lambda q: B.binary_matmul(q, q, 70), B.binary_matmul(p, p, 70)),
                     (lambda q: B.unpack_bits(q, 70), B.unpack_bits(p, 70))):
        try:  # the packed words may be refused when not C-contiguous, by name, never misread
            got = fn(pv)
        except ValueError as e:
            assert not pv.flags.c_contiguous and "C-contiguous" in str(e), e
            continue
        np.testing.assert_array_equal(got, want)


# -- NaN and Inf propagate through a forward, as in NumPy and PyTorch -----------------
NAN_LAYERS = [n for n in LAYERS if n not in ("Step", "Binarize", "BinaryAffine", "BinaryConv2D")]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", NAN_LAYERS)
def test_nan_and_inf_are_not_swallowed(name, bad):
    """A NaN anywhere in a sample reaches that sample's output; an Inf gives Inf or NaN
    there. (The sign layers map NaN to a sign like torch.sign does not; they are left out.)"""
    make, shape = LAYERS[name]
    x = _r(*shape)
    x.reshape(len(x), -1)[0, 0] = bad
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: NumPy's warning, not ours
        y = make().forward(x, train=False)
    row = np.asarray(y[0], np.float64)
    if name in ("Sigmoid", "Tanh", "Softmax") and not np.isnan(bad):
        return  # saturating: sigmoid(inf) = 1 is right
    if name in ("ReLU", "LeakyReLU", "MaxPool2D") and bad == -np.inf:
        return  # max(-inf, ...) is finite, relu(-inf) = 0: right
    assert not np.isfinite(row).all(), f"{name} turned {bad} into finite numbers: {row}"
    assert np.isfinite(np.asarray(y[1:])).all() or name in ("BatchNorm", "Residual",
                                                            "Concat", "Chain")


def test_the_catalogue_is_large(capsys):
    n = (len(CASES) + len(FILE_CASES) + len(CLI_CASES) + len(LAYOUT_CASES)
         + 2 * len(OP_LAYOUTS) + 3 * len(NAN_LAYERS))
    with capsys.disabled():
        print(f"\ntest_bad_input: {n} bad-input cases")
    assert n >= 500
