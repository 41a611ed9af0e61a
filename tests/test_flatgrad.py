"""Sequential's flat gradient buffer (cdl._flatgrad): grads are views of one array."""
import numpy as np
import pytest

from cdl import _flatgrad, optim
from cdl.layers import (Affine, BatchNorm, Conv2D, DropConnect, Flatten, MaxPool2D, ReLU,
                        Residual, SoftmaxCrossEntropy)
from cdl.model import Sequential


def _net(dtype=np.float64, weight_decay=None):
    rng = np.random.default_rng(0)
    layers = [Conv2D(1, 4, 3, pad=1, rng=rng), BatchNorm(4), ReLU(), MaxPool2D(2),
              Residual(Conv2D(4, 4, 3, pad=1, rng=rng), ReLU()), Flatten(),
              DropConnect(0.2, Affine(4 * 4 * 4, 8, rng=rng)), ReLU(), Affine(8, 3, rng=rng)]
    return Sequential(layers, loss=SoftmaxCrossEntropy(), weight_decay=weight_decay).astype(dtype)


def _data(dtype=np.float64):
    rng = np.random.default_rng(1)
    return rng.standard_normal((6, 1, 8, 8)).astype(dtype), rng.integers(0, 3, 6)


def _reference_grads(net, x, t):
    """The grads of the same step computed layer by layer without the buffer."""
    net.loss(x, t)
    d = net.loss_layer.backward(1.0)
    for layer in reversed(net.layers):
        d = layer.backward(d)
    if net.weight_decay is not None:
        net.weight_decay.add_grads(net.layers)
    return {k: np.array(v) for k, v in net.grads.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decay", [None, 1e-2])
def test_grads_are_views_of_one_buffer_in_flat_name_order(dtype, decay):
    wd = None if decay is None else optim.WeightDecay(l2=decay)
    x, t = _data(dtype)
    net = _net(dtype, wd)
    with net.hold_noise():
        net.loss(x, t)  # draws the DropConnect mask that both computations reuse
        expected = _reference_grads(net, x, t)
        net.loss(x, t)
        net.backward()
    buf = net.grad_buffer
    assert buf.ndim == 1 and buf.flags.c_contiguous and buf.dtype == dtype
    assert buf.size == sum(p.size for p in net.params.values())
    grads = net.grads
    assert list(grads) == list(expected)
    offset = 0
    for k, g in grads.items():
        assert np.shares_memory(g, buf), k
        np.testing.assert_array_equal(buf[offset:offset + g.size], g.ravel())
        np.testing.assert_array_equal(g, expected[k])
        offset += g.size


def test_hook_sees_each_layer_after_its_grads_landed_then_none():
    x, t = _data()
    net = _net()
    calls = []

    def hook(layout, i):
        if i is not None:  # the layer's grads are in the buffer now
            for e in layout.by_top.get(i, ()):
                assert e.layer.grads[e.key] is e.view
        calls.append(i)

    net.grad_hook = hook
    net.loss(x, t)
    net.backward(input_grad=False)
    assert calls == list(range(len(net.layers) - 1, -1, -1)) + [None]


def test_layout_follows_frozen_layers_new_heads_and_dtypes():
    x, t = _data()
    net = _net()
    net.loss(x, t)
    net.backward()
    first = _flatgrad.layout(net)
    assert _flatgrad.layout(net) is first  # unchanged model: the same buffer
    net.layers[0].trainable = False
    net.loss(x, t)
    net.backward()
    assert net.grad_buffer.size == sum(p.size for p in net.params.values())
    net.replace_head(Affine(8, 5, rng=np.random.default_rng(2)))
    net.loss(x, np.arange(6) % 5)
    net.backward()
    assert net.grad_buffer.size == sum(p.size for p in net.params.values())
    net.astype(np.float32)
    net.loss(x.astype(np.float32), np.arange(6) % 5)
    net.backward()
    assert net.grad_buffer.dtype == np.float32
    assert all(np.shares_memory(g, net.grad_buffer) for g in net.grads.values())


def test_training_through_the_buffer_matches_plain_arrays():
    """Optimizers update from views as from separate arrays: same weights after steps."""
    x, t = _data()
    a, b = _net(), _net()
    b.layers[6].ratio = a.layers[6].ratio = 0.0  # no DropConnect noise: same function
    oa, ob = optim.Momentum(lr=0.05), optim.Momentum(lr=0.05)
    for _ in range(3):
        a.loss(x, t)
        a.backward()
        oa.update(a.params, a.grads)
        grads = _reference_grads(b, x, t)
        ob.update(b.params, grads)
    for k, p in a.params.items():
        np.testing.assert_allclose(p, b.params[k], rtol=1e-12, atol=1e-14)
