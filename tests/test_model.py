"""cdl.model: Sequential (flat names, training step, gradients, predict, weight decay)."""
import numpy as np
import pytest

import cdl
from cdl import layers as L


def tiny_net(rng=0):
    return cdl.Sequential([L.Conv2D(1, 4, 3, pad=1, rng=rng), L.ReLU(), L.MaxPool2D(2),
                           L.Flatten(), L.Affine(4 * 2 * 2, 3, rng=rng)],
                          loss=L.SoftmaxCrossEntropy())


def test_flat_names_and_shared_arrays():
    net = tiny_net()
    assert list(net.params) == ["0.W", "0.b", "4.W", "4.b"]
    assert net.params["0.W"] is net.layers[0].params["W"]
    assert {k: v.shape for k, v in net.grads.items()} == {k: v.shape for k, v in net.params.items()}


def test_book_style_training_step_reduces_loss(rng):
    net = tiny_net()
    x = rng.standard_normal((8, 1, 4, 4)).astype(np.float32)
    t = rng.integers(0, 3, 8)
    opt = cdl.optim.Adam(lr=1e-2)
    first = net.loss(x, t)
    for _ in range(30):
        net.loss(x, t)
        net.backward()
        opt.update(net.params, net.grads)
    assert net.loss(x, t) < first * 0.5
    assert net.accuracy(x, t) > 0.8


def test_model_gradient_matches_numerical(rng):
    net = tiny_net().astype(np.float64)
    x = rng.standard_normal((3, 1, 4, 4))
    t = rng.integers(0, 3, 3)
    net.loss(x, t)
    net.backward()
    W = net.params["4.W"]
    analytic = net.grads["4.W"].copy()
    num = cdl.gradcheck.numerical_gradient(lambda: net.loss(x, t), W)
    np.testing.assert_allclose(analytic, num, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("first, width", [
    (lambda: L.Conv2D(1, 4, 3, pad=1, rng=0), 64),   # "gemm" (kernel tests cover each)
    (lambda: L.Conv2D(1, 4, 1, rng=0), 64),          # "pointwise"
    (lambda: L.Affine(16, 4, rng=0), 4)])            # Layer.backward_params' default
def test_backward_without_input_grad(rng, first, width):
    """input_grad=False: the same grads, no dx (Conv2D skips computing it)."""
    layers = [first(), L.ReLU(), L.Flatten(), L.Affine(width, 3, rng=0)]
    net = cdl.Sequential(layers, loss=L.SoftmaxCrossEntropy())
    x = rng.standard_normal((5, 1, 4, 4)).astype(np.float32)
    t = rng.integers(0, 3, 5)
    net.loss(x, t)
    dx = net.backward()
    assert dx.shape == x.shape
    want = {k: v.copy() for k, v in net.grads.items()}
    net.loss(x, t)
    assert net.backward(input_grad=False) is None
    for k, v in net.grads.items():
        np.testing.assert_allclose(v, want[k], rtol=1e-6, atol=1e-7)


def test_frozen_layers_are_left_out_of_params():
    net = tiny_net()
    net.layers[0].trainable = False
    assert list(net.params) == ["4.W", "4.b"]
    assert "params/0.W" in net.state()


def test_sequential_rejects_non_layers():
    with pytest.raises(ValueError, match="not a cdl Layer"):
        cdl.Sequential([L.ReLU(), "relu"])


class _ConstantPenalty:
    """A stand-in regularizer: penalty 3, and 1 added to every gradient."""

    def penalty(self, layers):
        return 3.0

    def add_grads(self, layers):
        for layer in layers:
            for g in layer.grads.values():
                g += 1.0


def test_weight_decay_hook_adds_penalty_and_gradient(rng):
    net = tiny_net().astype(np.float64)
    x = rng.standard_normal((3, 1, 4, 4))
    t = rng.integers(0, 3, 3)
    plain = net.loss(x, t)
    net.backward()
    grads = {k: v.copy() for k, v in net.grads.items()}
    net.weight_decay = _ConstantPenalty()
    assert net.loss(x, t) == pytest.approx(plain + 3.0, rel=1e-12)
    net.backward()
    for k, g in net.grads.items():
        np.testing.assert_allclose(g, grads[k] + 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="weight_decay"):
        cdl.Sequential([L.ReLU()], loss=L.SoftmaxCrossEntropy(), weight_decay=1e-4)


def test_predict_proba_and_a_single_sample():
    from cdl.models import small_cnn
    net = small_cnn(rng=0)
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    p = net.predict_proba(x)
    assert p.shape == (5, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(p.argmax(1), net.predict(x).argmax(1))
    one = net.predict(x[2])  # (C, H, W): one sample, no batch axis
    assert one.shape == (10,)
    np.testing.assert_allclose(one, net.predict(x)[2], rtol=1e-5, atol=1e-5)


def test_predict_proba_of_a_regression_model_is_refused():
    import pytest
    from cdl import Sequential, layers as L
    net = Sequential([L.Affine(3, 2)], loss=L.MeanSquaredError())
    with pytest.raises(ValueError, match="regression"):
        net.predict_proba(np.ones((2, 3), np.float32))
