"""Inception modules and GoogLeNet (cdl.models.inception): layouts, shapes, gradients, files."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.gradcheck import check_layer
from cdl.models import GoogLeNet, Inception

from ._helpers import check_model, count, tiny_input


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
    assert count(bn.layers, L.BatchNorm) == count(bn.layers, L.Conv2D) == 3 + 9 * 6


def test_inception_module_gradients():
    check_layer(Inception(3, 2, 2, 3, 1, 2, 1, rng=0), np.random.default_rng(0).uniform(
        0.1, 1.0, (2, 3, 4, 4)) * np.random.default_rng(1).choice([-1, 1], (2, 3, 4, 4)))


def test_googlenet_gradients_fast():
    """dL/dx and the first and last few parameters (every one: the slow test below)."""
    net = GoogLeNet((2, 8, 8), 3, width=1 / 64, rng=1)
    names = list(net.params)
    check_model(net, *tiny_input((2, 8, 8)), names=["x", *names[:8], *names[-8:]])


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_builds_and_forward_shape(shape):
    net = GoogLeNet(input_shape=shape, num_classes=7, rng=0)
    assert net.input_shape == shape
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    y = net.predict(x)
    assert y.shape == (2, 7) and y.dtype == np.float32 and np.isfinite(y).all()


@pytest.mark.slow
@pytest.mark.parametrize("make,shape", [
    (lambda: GoogLeNet((2, 8, 8), 3, width=1 / 64, rng=1), (2, 8, 8)),
    (lambda: GoogLeNet((1, 6, 6), 3, width=1 / 64, batch_norm=True, rng=2), (1, 6, 6)),
])
def test_googlenet_gradients_slow(make, shape):
    check_model(make(), *tiny_input(shape))


def test_save_and_load_predict_alike(tmp_path):
    net = GoogLeNet(width=1 / 16, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    net.save(tmp_path / "m.npz")
    back = cdl.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert back.summary((3, 32, 32), print_fn=None).splitlines()[1:] == \
        net.summary(print_fn=None).splitlines()[1:]
