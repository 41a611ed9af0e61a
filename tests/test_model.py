"""cdl.model: Sequential (flat names, training step, gradients, predict, weight decay, summary)."""
import re

import numpy as np
import pytest

import cdl
from cdl import Sequential, layers as L
from cdl.model import walk
from cdl.models import MODELS, GoogLeNet, ResNet, small_cnn


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


# Sequential.summary(): one row per layer, output shapes, parameter and activation totals.

def _rows(text):
    """{index: (type, shape text, params, activation text)} of the table's layer rows."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\d+)\s+(\w+)\s+(\([\d, ]*\))\s+([\d,]+)\s+([\d.]+ \w+)", line)
        if m:
            out[int(m[1])] = (m[2], m[3], int(m[4].replace(",", "")), m[5])
    return out


def _total(text, what):
    return int(re.search(rf"^{what}: ([\d,]+)$", text, re.M)[1].replace(",", ""))


def test_small_cnn_summary_by_hand(capsys):
    net = small_cnn(rng=0)
    text = net.summary()
    assert capsys.readouterr().out.strip() == text.strip()  # prints it, and returns it
    rows = _rows(text)
    assert [rows[i][0] for i in range(len(net.layers))] == [l.name for l in net.layers]
    assert rows[0] == ("Conv2D", "(32, 8, 8)", 32 * 9 + 32, "8.0 KiB")  # 32*8*8 floats
    assert rows[4][1:] == ("(32, 4, 4)", 0, "2.0 KiB")
    assert rows[8] == ("Affine", "(10,)", 650, "40 B")
    assert _total(text, "Total params") == net.num_params() == sum(r[2] for r in rows.values())
    assert "Activations per sample: 36.5 KiB" in text  # 8+8+8+8+2+2 KiB + 256+256+40 B
    assert text.splitlines()[0] == "Sequential: input (1, 8, 8), float32"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_totals(name):
    net = MODELS[name](rng=0)
    text = net.summary(print_fn=None)
    rows = _rows(text)
    assert len(rows) == len(net.layers)
    assert _total(text, "Total params") == net.num_params() == sum(r[2] for r in rows.values())
    assert _total(text, "Trainable params") == sum(p.size for p in net.params.values())
    assert rows[len(net.layers) - 1][1] == "(10,)"
    # the wrapping of forward for the table is gone afterwards
    assert not any("forward" in vars(layer) for _, layer in walk(net.layers))


def test_containers_count_their_insides_once():
    net = GoogLeNet(rng=0)
    rows = _rows(net.summary(print_fn=None))
    # inception 3a on 16x16: branches 8+8 | 12+12+16+16 | 2+2+4+4 | 24+4+4 channels,
    # plus the concatenated 32: 148 planes of 1 KiB (a branch's Chain adds nothing)
    assert rows[7] == ("Concat", "(32, 16, 16)", 2598, "148.0 KiB")
    res = ResNet(rng=0)
    r = _rows(res.summary(print_fn=None))[3]  # conv BN ReLU conv BN, then the sum: 6 x 49 KiB
    assert r[:2] == ("Residual", "(16, 28, 28)") and r[3] == "294.0 KiB"
    assert "Buffers (not trained): 672" in res.summary(print_fn=None)


def test_frozen_layers_and_float64():
    net = small_cnn(rng=0).astype(np.float64)
    net.layers[0].trainable = False
    text = net.summary(print_fn=None)
    assert _total(text, "Non-trainable params") == 320
    assert _total(text, "Trainable params") == net.num_params() - 320
    assert _rows(text)[0][3] == "16.0 KiB" and "float64" in text.splitlines()[0]


def test_input_shape_argument_and_errors():
    net = Sequential([L.Flatten(), L.Affine(12, 3)], loss=L.SoftmaxCrossEntropy())
    with pytest.raises(ValueError, match="pass input_shape"):
        net.summary()
    assert _rows(net.summary((3, 2, 2), print_fn=None))[1][1:3] == ("(3,)", 39)
    with pytest.raises(ValueError, match="input_shape"):
        Sequential([L.ReLU()], input_shape=(0, 3))
    assert Sequential([L.ReLU()], input_shape=[2, 3]).input_shape == (2, 3)
