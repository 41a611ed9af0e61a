"""VGG and AlexNet (cdl.models.classic): layouts, shapes, gradients, files."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.models import VGG, AlexNet, vgg11, vgg16

from ._helpers import check_model, count, tiny_input

BUILDERS = {"vgg11": vgg11, "vgg16": vgg16, "alexnet": AlexNet}


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
    assert count(net.layers, L.Conv2D) == convs and count(net.layers, L.Affine) == 3
    assert convs + 3 == depth
    widths = sorted({c.out_channels for c in net.layers if isinstance(c, L.Conv2D)})
    assert widths == [8, 16, 32, 64]  # 64..512 at width 1/8
    assert [type(l).__name__ for l in net.layers[-8:]] == [
        "Flatten", "Affine", "ReLU", "Dropout", "Affine", "ReLU", "Dropout", "Affine"]


@pytest.mark.parametrize("shape,pools,flat", [((3, 32, 32), 5, 64), ((1, 28, 28), 4, 64),
                                              ((1, 8, 8), 3, 64)])
def test_vgg_pools_while_the_plane_is_2x2_or_more(shape, pools, flat):
    net = VGG(input_shape=shape, rng=0)
    assert count(net.layers, L.MaxPool2D) == pools
    first_affine = next(l for l in net.layers if isinstance(l, L.Affine))
    assert first_affine.params["W"].shape == (flat, 512)


def test_vgg_options():
    net = VGG(depth=16, width=0.25, hidden=32, batch_norm=True, rng=0)
    convs = [l for l in net.layers if isinstance(l, L.Conv2D)]
    assert count(net.layers, L.BatchNorm) == len(convs) == 13
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
    assert count(net.layers, L.Affine) == 3 and count(net.layers, L.Dropout) == 2
    assert net.layers[-7].params["W"].shape == (48 * 4 * 4, 256)  # 32 -> 16 -> 8 -> 4
    with pytest.raises(ValueError, match="AlexNet: channels"):
        AlexNet(channels=(8, 8))


# -- gradients, float64 ------------------------------------------------------------------------


@pytest.mark.parametrize("make,shape", [
    (lambda: VGG((2, 8, 8), 3, depth=11, width=1 / 32, hidden=5, rng=1), (2, 8, 8)),
    (lambda: AlexNet((2, 8, 8), 3, channels=(2, 3, 3, 3, 2), hidden=4, rng=1), (2, 8, 8)),
])
def test_model_gradients(make, shape):
    """Every array of the model (and x) along a random direction, float64, batch 2."""
    net = make()
    check_model(net, *tiny_input(shape))


@pytest.mark.slow
def test_vgg16_batch_norm_gradients():
    net = VGG((1, 8, 8), 3, depth=16, width=1 / 32, hidden=4, batch_norm=True, rng=2)
    check_model(net, *tiny_input((1, 8, 8)))


# -- files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: VGG(depth=11, width=1 / 16, hidden=16, batch_norm=True, rng=0),
    lambda: AlexNet(rng=0),
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
