"""Transfer learning and fine-tuning (issue 20), end to end across layers, Sequential, Trainer
and checkpoints: frozen layers and BatchNorm statistics, per-layer learning-rate multipliers
in training, replacing a model's head. (The multipliers' rule itself: tests/optim/test_base.py.)"""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl import optim
from cdl._checks import is_device_array
from cdl.data import load_digits
from cdl.model import Sequential
from cdl.train import Trainer


@pytest.fixture(scope="module")
def digits():
    (x, t), _ = load_digits()
    return x[:300], t[:300]


def conv_net(seed=0, classes=10):
    return Sequential([L.Conv2D(1, 4, 3, pad=1, rng=seed), L.BatchNorm(4), L.ReLU(),
                       L.Flatten(), L.Affine(4 * 8 * 8, 16, rng=seed + 1), L.ReLU(),
                       L.Affine(16, classes, rng=seed + 2)], loss=L.SoftmaxCrossEntropy())


def snapshot(net):
    return {k: v.copy() for k, v in net.state().items()}


# -- freezing ---------------------------------------------------------------------------

def test_frozen_layers_and_their_batchnorm_statistics_do_not_move(digits):
    x, t = digits
    net = conv_net()
    for layer in net.layers[:2]:  # the conv and its BatchNorm
        layer.trainable = False
    net.layers[1].running_mean[...] = 0.1  # non-default statistics, to see they are used
    net.layers[1].running_var[...] = 2.0
    before = snapshot(net)
    Trainer(net, optim.Adam(lr=1e-2), batch_size=50, epochs=2, seed=0,
            verbose=False).fit(x, t)
    after = net.state()
    for k in ("params/0.W", "params/0.b", "params/1.gamma", "params/1.beta",
              "buffers/1.running_mean", "buffers/1.running_var"):
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert not np.array_equal(after["params/4.W"], before["params/4.W"])  # the rest trains


# -- learning-rate multipliers ---------------------------------------------------------


def test_multipliers_from_a_trainer_fine_tune_the_head_only(digits):
    x, t = digits
    net = conv_net()
    before = snapshot(net)
    opt = optim.SGD(lr=0.1, lr_multipliers={"": 0.0, "6": 1.0})  # only the last Affine moves
    Trainer(net, opt, batch_size=50, epochs=1, seed=0, verbose=False).fit(x, t)
    after = net.state()
    for k in before:
        if k.startswith("params/"):
            moved = not np.array_equal(after[k], before[k])
            assert moved == k.startswith("params/6."), k


def test_multipliers_show_in_repr_and_survive_a_checkpoint(digits, tmp_path):
    x, t = digits

    def trainer():
        opt = optim.Adam(lr=1e-2, lr_multipliers={"": 0.1, "6": 1.0})
        return Trainer(conv_net(), opt, batch_size=50, epochs=1, seed=0, verbose=False,
                       callbacks=[optim.CosineLR(total=2)])
    assert "lr_multipliers={'': 0.1, '6': 1.0}" in repr(trainer().optimizer)
    whole = trainer()
    whole.epochs = 2
    whole.fit(x, t)
    first = trainer()
    first.fit(x, t)
    first.save_checkpoint(tmp_path / "c.npz")
    resumed = trainer()
    resumed.load_checkpoint(tmp_path / "c.npz")
    resumed.fit(x, t)
    for k, v in whole.model.state().items():
        np.testing.assert_array_equal(resumed.model.state()[k], v)


# -- replacing the head ------------------------------------------------------------------

def test_replace_head_keeps_the_body_and_trains_the_new_head(digits):
    x, t = digits
    net = conv_net()
    Trainer(net, optim.Adam(lr=1e-2), batch_size=50, epochs=2, seed=0, verbose=False).fit(x, t)
    body = net.layers[:-1]
    trained = snapshot(net)
    # a new task: three classes (digit mod 3), a new head, the body frozen
    head = L.Affine(16, 3, rng=5)
    assert net.replace_head(head) is net
    assert net.layers[:-1] == body and net.layers[-1] is head
    for k, v in net.state().items():
        if not k.startswith("params/6."):
            np.testing.assert_array_equal(v, trained[k])
    for layer in body:
        layer.trainable = False
    assert sorted(net.params) == ["6.W", "6.b"]
    t3 = t % 3
    loss0 = net.loss(x, t3)
    Trainer(net, optim.Adam(lr=3e-2), batch_size=50, epochs=6, seed=0, verbose=False).fit(x, t3)
    for k, v in net.state().items():
        if not k.startswith("params/6."):
            np.testing.assert_array_equal(v, trained[k], err_msg=k)
    assert net.loss(x, t3) < 0.6 * loss0
    assert net.accuracy(x, t3) > 0.7  # chance: 1/3


def test_replace_head_with_several_layers_in_the_body_dtype():
    net = conv_net().astype(np.float64)
    net.replace_head([L.Affine(16 * 1, 8), L.ReLU(), L.Affine(8, 2)], n=2)
    assert [type(l).__name__ for l in net.layers[-4:]] == ["Affine", "Affine", "ReLU", "Affine"]
    assert all(v.dtype == np.float64 for v in net.state().values())
    y = net.predict(np.zeros((2, 1, 8, 8)))
    assert y.shape == (2, 2) and y.dtype == np.float64


def test_replace_head_on_the_device(device):
    net = Sequential([L.Affine(3, 4, rng=0), L.ReLU(), L.Affine(4, 2, rng=1)],
                     loss=L.SoftmaxCrossEntropy())
    if device == "cuda":
        net.to_device()
    net.replace_head(L.Affine(4, 5, rng=2))
    assert all(is_device_array(v) == (device == "cuda") for v in net.state().values())
    x = np.ones((2, 3), np.float32)
    y = cdl.cuda.to_host(net.forward(cdl.cuda.to_device(x) if device == "cuda" else x))
    assert y.shape == (2, 5)


@pytest.mark.parametrize("layers, n, match", [
    ([L.ReLU()], 4, "n must be an int in \\[0, 3\\]"),
    ([L.ReLU()], -1, "n must be"),
    ([L.ReLU()], True, "n must be"),
    (["Affine"], 1, "item 0 is str"),
])
def test_replace_head_refuses_bad_arguments(layers, n, match):
    net = Sequential([L.Affine(3, 4), L.ReLU(), L.Affine(4, 2)])
    with pytest.raises(ValueError, match=match):
        net.replace_head(layers, n=n)
    assert len(net.layers) == 3
