"""VGG, AlexNet, GoogLeNet (Inception) and the CIFAR ResNets: layouts, shapes, gradients, files."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.gradcheck import check_layer
from cdl.models import (VGG, AlexNet, GoogLeNet, Inception, ResNet, resnet20, resnet32, resnet56,
                        vgg11, vgg16)

BUILDERS = {"vgg11": vgg11, "vgg16": vgg16, "alexnet": AlexNet, "googlenet": GoogLeNet,
            "resnet20": resnet20}


def _count(layers, cls):
    n = 0
    for layer in layers:
        n += isinstance(layer, cls) + _count(layer.children(), cls)
    return n


# -- a whole-model gradient check, float64 -----------------------------------------------------

def check_model(net, x, t, seed=0, names=None):
    """dL/dx and dL/dparam along one random direction per array, against central differences.

    Biases and BatchNorm betas are moved off 0 first: a window of ReLU zeros
    (or a constant BatchNorm channel) would put the next ReLU on its kink.
    """
    net.astype(np.float64)
    rng = np.random.default_rng(seed)
    for name, p in net.params.items():
        if name.endswith((".b", ".beta")):
            p[...] = rng.uniform(0.1, 0.5, p.shape) * rng.choice([-1, 1], p.shape)
    x = np.array(x, dtype=np.float64)
    with net.hold_noise():
        net.loss(x, t)
        dx = net.backward()
        analytic = {"x": dx.copy(), **{k: g.copy() for k, g in net.grads.items()}}
        arrays = {"x": x, **net.params}
        for name in names or arrays:
            p, v, h = arrays[name], rng.standard_normal(arrays[name].shape), 1e-6
            old = p.copy()
            p[...] = old + h * v
            up = net.loss(x, t)
            p[...] = old - h * v
            down = net.loss(x, t)
            p[...] = old
            np.testing.assert_allclose((analytic[name] * v).sum(), (up - down) / (2 * h),
                                       rtol=1e-4, atol=1e-8, err_msg=name)
    return analytic


def _tiny_input(shape, seed=1):
    r = np.random.default_rng(seed)
    return r.standard_normal((2, *shape)), np.array([0, 2])


# -- builds, shapes --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_builds_and_forward_shape(name, shape):
    net = BUILDERS[name](input_shape=shape, num_classes=7, rng=0)
    assert net.input_shape == shape
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    y = net.predict(x)
    assert y.shape == (2, 7) and y.dtype == np.float32 and np.isfinite(y).all()


@pytest.mark.parametrize("depth,convs", [(11, 8), (13, 10), (16, 13), (19, 16)])
def test_vgg_layouts(depth, convs):
    net = VGG(depth=depth, rng=0)
    assert _count(net.layers, L.Conv2D) == convs and _count(net.layers, L.Affine) == 3
    assert convs + 3 == depth
    widths = sorted({c.out_channels for c in net.layers if isinstance(c, L.Conv2D)})
    assert widths == [8, 16, 32, 64]  # 64..512 at width 1/8
    assert [type(l).__name__ for l in net.layers[-8:]] == [
        "Flatten", "Affine", "ReLU", "Dropout", "Affine", "ReLU", "Dropout", "Affine"]


@pytest.mark.parametrize("shape,pools,flat", [((3, 32, 32), 5, 64), ((1, 28, 28), 4, 64),
                                              ((1, 8, 8), 3, 64)])
def test_vgg_pools_while_the_plane_is_2x2_or_more(shape, pools, flat):
    net = VGG(input_shape=shape, rng=0)
    assert _count(net.layers, L.MaxPool2D) == pools
    first_affine = next(l for l in net.layers if isinstance(l, L.Affine))
    assert first_affine.params["W"].shape == (flat, 512)


def test_vgg_options():
    net = VGG(depth=16, width=0.25, hidden=32, batch_norm=True, rng=0)
    convs = [l for l in net.layers if isinstance(l, L.Conv2D)]
    assert _count(net.layers, L.BatchNorm) == len(convs) == 13
    assert all(not c.bias for c in convs) and max(c.out_channels for c in convs) == 128
    assert net.layers[-1].params["W"].shape == (32, 10)
    with pytest.raises(ValueError, match="VGG: depth"):
        VGG(depth=12)
    with pytest.raises(ValueError, match="VGG: width"):
        VGG(width=0)
    with pytest.raises(ValueError, match="VGG: input_shape"):
        VGG(input_shape=(32, 32))


def test_alexnet_layout():
    net = AlexNet(rng=0)
    convs = [l for l in net.layers if isinstance(l, L.Conv2D)]
    assert [c.kernel_size for c in convs] == [(5, 5)] * 2 + [(3, 3)] * 3
    assert [c.out_channels for c in convs] == [16, 48, 64, 64, 48]
    pools = [l for l in net.layers if isinstance(l, L.MaxPool2D)]
    assert [(p.pool_size, p.stride) for p in pools] == [((3, 3), (2, 2))] * 3  # overlapping
    assert _count(net.layers, L.Affine) == 3 and _count(net.layers, L.Dropout) == 2
    assert net.layers[-7].params["W"].shape == (48 * 4 * 4, 256)  # 32 -> 16 -> 8 -> 4
    with pytest.raises(ValueError, match="AlexNet: channels"):
        AlexNet(channels=(8, 8))


def test_inception_module_is_a_concat_of_four_branches():
    block = Inception(192, 64, 96, 128, 16, 32, 32, rng=0)  # table 1, inception (3a)
    assert isinstance(block, L.Concat) and len(block.children()) == 4
    weights = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    assert sum(p.size for p in cdl.model.flat([block], "params").values()) == \
        weights + 64 + 96 + 128 + 16 + 32 + 32
    y = block.forward(np.zeros((1, 192, 7, 7), np.float32), train=False)
    assert y.shape == (1, 256, 7, 7)
    with pytest.raises(ValueError, match="Inception: c5r"):
        Inception(8, 1, 1, 1, 0, 1, 1)


def test_googlenet_layout():
    net = GoogLeNet(rng=0)
    modules = [l for l in net.layers if isinstance(l, L.Concat)]
    assert len(modules) == 9
    assert net.layers[-1].params["W"].shape == (128, 10)  # 1024 channels of 5b at width 1/8
    full = GoogLeNet(width=1.0, num_classes=3, rng=0)
    assert full.layers[-1].params["W"].shape == (1024, 3)
    bn = GoogLeNet(width=1 / 16, batch_norm=True, rng=0)
    assert _count(bn.layers, L.BatchNorm) == _count(bn.layers, L.Conv2D) == 3 + 9 * 6


@pytest.mark.parametrize("builder,blocks", [(resnet20, 3), (resnet32, 5), (resnet56, 9)])
def test_cifar_resnets_have_6n_plus_2_layers(builder, blocks):
    net = builder(rng=0)
    res = [l for l in net.layers if isinstance(l, L.Residual)]
    assert len(res) == 3 * blocks
    main_convs = sum(_count(r.path.children(), L.Conv2D) for r in res) + 1
    assert main_convs + 1 == 6 * blocks + 2
    assert [r.shortcut is not None for r in res].count(True) == 2  # option B at stages 2, 3
    assert ResNet(input_shape=(3, 32, 32), blocks=blocks, rng=0).num_params() == net.num_params()


def test_resnet20_size_and_default():
    assert resnet20(rng=0).num_params() == 272474  # the paper's 0.27M, plus two projections
    assert len([l for l in ResNet(rng=0).layers if isinstance(l, L.Residual)]) == 3  # ResNet-8
    with pytest.raises(ValueError, match="ResNet: blocks"):
        ResNet(blocks=0)


# -- gradients, float64 ------------------------------------------------------------------------

def test_inception_module_gradients():
    check_layer(Inception(3, 2, 2, 3, 1, 2, 1, rng=0), np.random.default_rng(0).uniform(
        0.1, 1.0, (2, 3, 4, 4)) * np.random.default_rng(1).choice([-1, 1], (2, 3, 4, 4)))


@pytest.mark.parametrize("make,shape", [
    (lambda: VGG((2, 8, 8), 3, depth=11, width=1 / 32, hidden=5, rng=1), (2, 8, 8)),
    (lambda: AlexNet((2, 8, 8), 3, channels=(2, 3, 3, 3, 2), hidden=4, rng=1), (2, 8, 8)),
    (lambda: ResNet((2, 6, 6), 3, channels=(2, 3, 2), blocks=3, rng=1), (2, 6, 6)),
])
def test_model_gradients(make, shape):
    """Every array of the model (and x) along a random direction, float64, batch 2."""
    net = make()
    check_model(net, *_tiny_input(shape))


def test_googlenet_gradients_fast():
    """dL/dx and the first and last few parameters (every one: the slow test below)."""
    net = GoogLeNet((2, 8, 8), 3, width=1 / 64, rng=1)
    names = list(net.params)
    check_model(net, *_tiny_input((2, 8, 8)), names=["x", *names[:8], *names[-8:]])


@pytest.mark.slow
@pytest.mark.parametrize("make,shape", [
    (lambda: GoogLeNet((2, 8, 8), 3, width=1 / 64, rng=1), (2, 8, 8)),
    (lambda: GoogLeNet((1, 6, 6), 3, width=1 / 64, batch_norm=True, rng=2), (1, 6, 6)),
    (lambda: VGG((1, 8, 8), 3, depth=16, width=1 / 32, hidden=4, batch_norm=True, rng=2),
     (1, 8, 8)),
])
def test_model_gradients_slow(make, shape):
    check_model(make(), *_tiny_input(shape))


# -- files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: VGG(depth=11, width=1 / 16, hidden=16, batch_norm=True, rng=0),
    lambda: AlexNet(rng=0),
    lambda: GoogLeNet(width=1 / 16, rng=0),
    lambda: ResNet(input_shape=(3, 32, 32), channels=(4, 8, 8), blocks=3, rng=0),
])
def test_save_and_load_predict_alike(make, tmp_path):
    net = make()
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    net.loss(x, np.array([1, 2]))  # move any BatchNorm running statistics off their init
    net.save(tmp_path / "m.npz")
    back = cdl.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert back.summary((3, 32, 32), print_fn=None).splitlines()[1:] == \
        net.summary(print_fn=None).splitlines()[1:]
