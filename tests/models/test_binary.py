"""BinaryMLP and BinaryConvNet (cdl.models.binary): the BNN paper's layouts, their float twins,
bad arguments, a training step."""
import numpy as np
import pytest

from cdl import layers as L
from cdl.models import BinaryConvNet, BinaryMLP


def _types(net):
    return [type(layer).__name__ for layer in net.layers]


def test_binary_mlp_layout():
    net = BinaryMLP((1, 4, 4), 3, hidden=(8, 6), dropout=0.25, rng=0)
    assert _types(net) == ["Flatten", "BinaryAffine", "BatchNorm", "Dropout", "BinaryAffine",
                           "BatchNorm", "Dropout", "BinaryAffine", "BatchNorm"]
    products = [layer for layer in net.layers if isinstance(layer, L.BinaryAffine)]
    # the first layer sees real pixels; the next ones binarize their input (the activation)
    assert [p.binarize_input for p in products] == [False, True, True]
    assert all(not p.bias for p in products)
    assert [p.params["W"].shape for p in products] == [(16, 8), (8, 6), (6, 3)]


def test_binary_mlp_float_twin_has_the_same_shapes():
    net = BinaryMLP((1, 4, 4), 3, hidden=(8, 6), rng=0)
    twin = BinaryMLP.float_twin((1, 4, 4), 3, hidden=(8, 6), rng=0)
    assert _types(twin) == ["Flatten", "Affine", "BatchNorm", "ReLU", "Affine", "BatchNorm",
                            "ReLU", "Affine", "BatchNorm"]
    # the same arrays in the same order (the twin's ReLUs shift the layer indexes)
    assert [v.shape for v in twin.params.values()] == [v.shape for v in net.params.values()]


@pytest.mark.slow  # a forward through the binary kernels
def test_binary_convnet_layout_and_shapes():
    net = BinaryConvNet((1, 8, 8), 5, channels=(2, 4), hidden=6, rng=0)
    assert _types(net) == ["BinaryConv2D", "BatchNorm", "BinaryConv2D", "MaxPool2D", "BatchNorm",
                           "BinaryConv2D", "BatchNorm", "BinaryConv2D", "MaxPool2D", "BatchNorm",
                           "Flatten", "BinaryAffine", "BatchNorm", "BinaryAffine", "BatchNorm"]
    convs = [layer for layer in net.layers if isinstance(layer, L.BinaryConv2D)]
    assert [c.binarize_input for c in convs] == [False, True, True, True]
    assert net.layers[11].params["W"].shape == (4 * 2 * 2, 6)
    y = net.predict(np.random.default_rng(0).uniform(0, 1, (3, 1, 8, 8)).astype(np.float32))
    assert y.shape == (3, 5) and np.isfinite(y).all()
    twin = BinaryConvNet.float_twin((1, 8, 8), 5, channels=(2, 4), hidden=6, rng=0)
    # the same arrays in the same order (the twin's ReLUs shift the layer indexes)
    assert [v.shape for v in twin.params.values()] == [v.shape for v in net.params.values()]


@pytest.mark.parametrize("make, match", [
    (lambda: BinaryMLP((1, 4), 3), r"BinaryMLP: input_shape must be \(C, H, W\)"),
    (lambda: BinaryMLP(hidden=()), "BinaryMLP: hidden must be a non-empty sequence"),
    (lambda: BinaryMLP.float_twin(num_classes=0), "BinaryMLP.float_twin: num_classes"),
    (lambda: BinaryConvNet(channels=(2, 3, 4)), "BinaryConvNet: channels must be two ints"),
    (lambda: BinaryConvNet((1, 3, 8)), "BinaryConvNet: input 3x8 is too small"),
])
def test_bad_arguments_name_the_model(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_training_step_fills_every_gradient(rng):
    net = BinaryMLP((1, 4, 4), 3, hidden=(8,), rng=0)
    x = rng.uniform(0, 1, (6, 1, 4, 4)).astype(np.float32)
    loss = net.loss(x, np.array([0, 1, 2, 0, 1, 2]))
    net.backward()
    assert np.isfinite(loss) and set(net.grads) == set(net.params)
    assert any(np.any(g != 0) for g in net.grads.values())
