"""SimpleConvNet, DeepConvNet and the ResNets (cdl.models.convnets): layouts, shapes, registry,
gradients, save/load."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.models import MODELS, DeepConvNet, ResNet, SimpleConvNet, resnet20, resnet32, resnet56

from ._helpers import check_model, count, tiny_input


def _types(net):
    return [type(layer).__name__ for layer in net.layers]


def test_deep_convnet_is_the_books_network():
    net = DeepConvNet(rng=0)
    convs = [l for l in net.layers if isinstance(l, L.Conv2D)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64]
    assert [c.pad for c in convs] == [(1, 1)] * 3 + [(2, 2)] + [(1, 1)] * 2
    assert _types(net) == (["Conv2D", "ReLU"] * 2 + ["MaxPool2D"]) * 3 + \
        ["Flatten", "Affine", "ReLU", "Dropout", "Affine", "Dropout"]
    assert net.layers[-5].params["W"].shape == (64 * 4 * 4, 50)
    assert net.num_params() == 123552  # the book's DeepConvNet on 28x28


def test_simple_convnet_is_the_books_network():
    net = SimpleConvNet(rng=0)
    assert _types(net) == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Affine", "ReLU", "Affine"]
    assert net.layers[0].params["W"].shape == (30, 1, 5, 5)
    assert net.layers[4].params["W"].shape == (30 * 12 * 12, 100)


def test_resnet_shortcuts():
    net = ResNet(input_shape=(3, 32, 32), blocks=2, rng=0)
    res = [l for l in net.layers if isinstance(l, L.Residual)]
    assert len(res) == 6
    # identity inside a stage, 1x1 stride-2 projection + BN where a stage starts
    assert [r.shortcut is None for r in res] == [True, True, False, True, False, True]
    proj = res[2].shortcut.children()
    assert isinstance(proj[0], L.Conv2D) and proj[0].kernel_size == (1, 1)
    assert proj[0].stride == (2, 2) and isinstance(proj[1], L.BatchNorm)
    assert net.forward(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


@pytest.mark.parametrize("name,cls", [("simple_cnn", SimpleConvNet), ("deep_cnn", DeepConvNet),
                                      ("resnet", ResNet)])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_registered_and_shapes(name, cls, shape):
    assert MODELS[name] is cls
    net = MODELS[name](input_shape=shape, num_classes=7, rng=0)
    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    assert net.predict(x).shape == (3, 7)
    loss = net.loss(x, np.array([0, 3, 6]))
    net.backward()
    assert np.isfinite(loss) and set(net.grads) == set(net.params)


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="SimpleConvNet"):
        SimpleConvNet(input_shape=(1, 3, 3))


@pytest.mark.parametrize("make", [
    lambda: DeepConvNet(input_shape=(2, 8, 8), num_classes=3, channels=(2, 3, 3), hidden=4, rng=1),
    lambda: ResNet(input_shape=(2, 6, 6), num_classes=3, channels=(2, 3), blocks=1, rng=1),
])
def test_model_gradients_match_finite_differences(make):
    """dL/dparam along a random direction, for every parameter of the whole model (float64)."""
    net = make().astype(np.float64)
    rng = np.random.default_rng(0)
    for name, p in net.params.items():  # biases off 0: a window of ReLU zeros sits on a kink
        if name.endswith(".b"):
            p[...] = rng.uniform(0.1, 0.5, p.shape) * rng.choice([-1, 1], p.shape)
    x, t = rng.standard_normal((4, 2, *((8, 8) if isinstance(net, DeepConvNet) else (6, 6)))), \
        np.array([0, 1, 2, 1])
    with net.hold_noise():
        net.loss(x, t)
        net.backward()
        grads = {k: g.copy() for k, g in net.grads.items()}
        for name, p in net.params.items():
            v = rng.standard_normal(p.shape)
            old, h = p.copy(), 1e-6
            p[...] = old + h * v
            up = net.loss(x, t)
            p[...] = old - h * v
            down = net.loss(x, t)
            p[...] = old
            np.testing.assert_allclose((grads[name] * v).sum(), (up - down) / (2 * h),
                                       rtol=1e-4, atol=1e-7, err_msg=name)


def test_save_and_load(tmp_path):
    net = ResNet(input_shape=(1, 8, 8), rng=0)
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32)
    net.loss(x, np.array([1, 2]))  # move the BatchNorm running statistics off their init
    net.save(tmp_path / "r.npz")
    back = cdl.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


@pytest.mark.parametrize("builder,blocks", [(resnet20, 3), (resnet32, 5), (resnet56, 9)])
def test_cifar_resnets_have_6n_plus_2_layers(builder, blocks):
    net = builder(rng=0)
    res = [l for l in net.layers if isinstance(l, L.Residual)]
    assert len(res) == 3 * blocks
    main_convs = sum(count(r.path.children(), L.Conv2D) for r in res) + 1
    assert main_convs + 1 == 6 * blocks + 2
    assert [r.shortcut is not None for r in res].count(True) == 2  # option B at stages 2, 3
    assert ResNet(input_shape=(3, 32, 32), blocks=blocks, rng=0).num_params() == net.num_params()


def test_resnet20_size_and_default():
    assert resnet20(rng=0).num_params() == 272474  # the paper's 0.27M, plus two projections
    assert len([l for l in ResNet(rng=0).layers if isinstance(l, L.Residual)]) == 3  # ResNet-8
    with pytest.raises(ValueError, match="ResNet: blocks"):
        ResNet(blocks=0)


def test_resnet_gradients_with_projections():
    """Every array of a 3-stage ResNet (and x) along a random direction, float64, batch 2."""
    check_model(ResNet((2, 6, 6), 3, channels=(2, 3, 2), blocks=3, rng=1), *tiny_input((2, 6, 6)))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_resnet20_builds_and_forward_shape(shape):
    net = resnet20(input_shape=shape, num_classes=7, rng=0)
    assert net.input_shape == shape
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    y = net.predict(x)
    assert y.shape == (2, 7) and y.dtype == np.float32 and np.isfinite(y).all()


def test_cifar_resnet_save_and_load_predict_alike(tmp_path):
    net = ResNet(input_shape=(3, 32, 32), channels=(4, 8, 8), blocks=3, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    net.loss(x, np.array([1, 2]))  # move the BatchNorm running statistics off their init
    net.save(tmp_path / "m.npz")
    back = cdl.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict(x), net.predict(x))

