"""cdl.layers as a package: every name it exports is a layer (or loss) reachable from it,
and every exported layer passes a float64 numerical gradient check (dx and params).

CASES maps each layer class name to (factory, input); a meta-test fails when
a layer exported by cdl.layers has no case here.
"""
import inspect
import pathlib

import numpy as np
import pytest

from cdl import layers as L
from cdl.gradcheck import check_layer


def away_from_zero(shape, seed=0):
    """Random values with |x| >= 0.1: no input sits on a ReLU or Step kink."""
    r = np.random.default_rng(seed)
    x = r.uniform(0.1, 1.5, shape)
    return x * r.choice([-1.0, 1.0], shape)


def distinct(shape, seed=0):
    """No ties within any pooling window (spacing 0.05 >> the finite-difference step)."""
    r = np.random.default_rng(seed)
    return r.permutation(int(np.prod(shape))).reshape(shape) * 0.05 - 1.0


CASES = {
    "Affine": [(lambda: L.Affine(12, 5), away_from_zero((3, 12))),
               (lambda: L.Affine(2 * 3 * 2, 4, bias=False), away_from_zero((2, 2, 3, 2)))],
    "Conv2D": [(lambda: L.Conv2D(2, 3, 3, pad=1), away_from_zero((2, 2, 5, 5))),
               (lambda: L.Conv2D(3, 2, (2, 3), stride=(2, 1), pad=(0, 1)), away_from_zero((1, 3, 5, 4))),
               (lambda: L.Conv2D(2, 2, 1, stride=3, bias=False), away_from_zero((2, 2, 7, 7))),
               # 1x1, stride 1, no padding: the "pointwise" algorithm of cdl.kernels.conv
               (lambda: L.Conv2D(3, 2, 1), away_from_zero((3, 3, 3, 4))),
               # 64 filters: the forward GEMM yields columns (cdl.kernels.conv)
               (lambda: L.Conv2D(4, 64, 2, stride=2, pad=1), away_from_zero((2, 4, 3, 3))),
               # 1 to 3 input channels, output rows of 14 or more: "direct"
               (lambda: L.Conv2D(1, 3, (3, 2), stride=(1, 2), pad=(1, 0)), away_from_zero((1, 1, 5, 28))),
               (lambda: L.Conv2D(2, 5, 3, stride=2, pad=1), away_from_zero((1, 2, 4, 27))),
               # 3x3, stride 1, 32 input channels or more: "winograd"
               (lambda: L.Conv2D(32, 2, 3, pad=1), away_from_zero((1, 32, 3, 4)))],
    "MaxPool2D": [(lambda: L.MaxPool2D(2), distinct((2, 2, 4, 4))),
                  (lambda: L.MaxPool2D(3, stride=2, pad=1), distinct((1, 2, 5, 5)))],
    "AvgPool2D": [(lambda: L.AvgPool2D(2), away_from_zero((2, 2, 4, 4))),
                  (lambda: L.AvgPool2D(3, stride=2, pad=1), away_from_zero((1, 2, 5, 6)))],
    "GlobalAvgPool2D": [(lambda: L.GlobalAvgPool2D(), away_from_zero((2, 3, 3, 4)))],
    "Flatten": [(lambda: L.Flatten(), away_from_zero((2, 3, 2, 2)))],
    "ReLU": [(lambda: L.ReLU(), away_from_zero((3, 7)))],
    "LeakyReLU": [(lambda: L.LeakyReLU(0.1), away_from_zero((3, 7)))],
    "Sigmoid": [(lambda: L.Sigmoid(), away_from_zero((3, 7)) * 3)],
    "Tanh": [(lambda: L.Tanh(), away_from_zero((3, 7)))],
    "Step": [(lambda: L.Step(), away_from_zero((3, 7)))],
    "Softmax": [(lambda: L.Softmax(), away_from_zero((4, 6)))],
    "Chain": [(lambda: L.Chain(L.Conv2D(2, 3, 3, pad=1), L.Tanh(), L.Conv2D(3, 2, 1)),
               away_from_zero((2, 2, 4, 4)))],
    "Residual": [(lambda: L.Residual(L.Conv2D(2, 2, 3, pad=1), L.Tanh(), L.Conv2D(2, 2, 3, pad=1)),
                  away_from_zero((2, 2, 4, 4))),
                 (lambda: L.Residual(L.Conv2D(2, 4, 3, stride=2, pad=1), L.Tanh(),
                                     shortcut=L.Conv2D(2, 4, 1, stride=2)),
                  away_from_zero((2, 2, 5, 5)))],
    "Concat": [(lambda: L.Concat(L.Conv2D(3, 2, 1), [L.Conv2D(3, 2, 1), L.Tanh(), L.Conv2D(2, 3, 3, pad=1)],
                                 [L.AvgPool2D(3, stride=1, pad=1), L.Conv2D(3, 1, 1)]),
                away_from_zero((2, 3, 4, 4)))],
    "BatchNorm": [(lambda: L.BatchNorm(3), away_from_zero((4, 3, 2, 3))),
                  (lambda: L.BatchNorm(5), away_from_zero((6, 5))),
                  (lambda: L.BatchNorm(2), away_from_zero((1, 2, 3, 2))),
                  (lambda: _frozen_batchnorm(3), away_from_zero((2, 3, 2, 2)))],
    "Dropout": [(lambda: L.Dropout(0.5, rng=0), away_from_zero((4, 6))),
                (lambda: L.Dropout(0.3, rng=1), away_from_zero((2, 2, 3, 3)))],
    "DropConnect": [(lambda: L.DropConnect(L.Affine(6, 4), 0.5, rng=0), away_from_zero((3, 6))),
                    (lambda: L.DropConnect(L.Conv2D(2, 3, 3, pad=1), 0.3, rng=1),
                     away_from_zero((2, 2, 4, 4)))],
    "GaussianNoise": [(lambda: L.GaussianNoise(0.5, rng=0), away_from_zero((3, 5)))],
}


def _frozen_batchnorm(c):
    """Frozen BatchNorm: normalises with (non-trivial) running statistics in training too."""
    bn = L.BatchNorm(c)
    bn.running_mean = np.linspace(-0.5, 0.5, c)
    bn.running_var = np.linspace(0.5, 2.0, c)
    bn.params["gamma"][:] = np.linspace(0.5, 1.5, c)
    bn.trainable = False
    return bn


def exported_layers():
    return sorted(name for name, obj in vars(L).items()
                  if inspect.isclass(obj) and issubclass(obj, L.Layer) and obj is not L.Layer)


# Layers whose backward crosses sign(): its derivative is 0 almost everywhere and the
# straight-through estimator (STE) replaces it on purpose, so central differences cannot
# check the whole gradient. The tests named here check the STE gradients against their
# stated rule and gradient-check the continuous parts (dx of a first layer, the bias, the
# XNOR-Net scale path through the latent weights).
STE_EXEMPT = {
    "Binarize": "tests/layers/test_binary.py::test_binarize_gradient_is_the_ste",
    "BinaryAffine": "tests/layers/test_binary.py::test_binary_affine_gradients",
    "BinaryConv2D": "tests/layers/test_binary.py::test_binary_conv2d_gradients",
}


def test_all_names_the_layer_classes_of_every_family():
    assert sorted(L.__all__) == sorted(set(L.__all__))
    for name in L.__all__:
        obj = getattr(L, name)
        assert inspect.isclass(obj) and issubclass(obj, (L.Layer, L.Loss)), name
    # every public layer class defined in a family module is exported
    assert set(exported_layers()) <= set(L.__all__)
    from cdl.layers import base
    assert {n for n, c in base.registered_layers().items() if c.__module__.startswith("cdl.layers")} \
        <= set(L.__all__)


def test_every_exported_layer_has_a_case():
    missing = [name for name in exported_layers() if name not in CASES and name not in STE_EXEMPT]
    assert not missing, f"add gradient-check cases for {missing}"


def test_ste_exemptions_point_at_existing_tests():
    root = pathlib.Path(__file__).resolve().parents[2]
    for name, target in STE_EXEMPT.items():
        path, func = target.split("::")
        assert name in exported_layers(), f"{name} is exempt but not exported"
        assert f"def {func}(" in (root / path).read_text(), f"{target} does not exist"


@pytest.mark.parametrize("name,i", [(n, i) for n, cs in CASES.items() for i in range(len(cs))])
def test_gradcheck(name, i):
    factory, x = CASES[name][i]
    layer = factory()
    grads = check_layer(layer, x)
    assert set(grads) == {"x", *layer.params}
