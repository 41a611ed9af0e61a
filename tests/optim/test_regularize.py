"""Weight decay: reported penalty, added gradient, what decays by default and per layer."""
import numpy as np
import pytest

from cdl import Sequential, optim
from cdl import layers as L
from cdl.gradcheck import numerical_gradient


def _net(weight_decay, seed=0):
    net = Sequential([L.Conv2D(1, 2, 3, pad=1, rng=seed), L.ReLU(), L.Flatten(),
                      L.Affine(2 * 4 * 4, 5, rng=seed), L.Tanh(),
                      L.Residual(L.Affine(5, 5, rng=seed)),
                      L.Affine(5, 3, rng=seed)],
                     loss=L.SoftmaxCrossEntropy(), weight_decay=weight_decay)
    net.astype(np.float64)
    for p in net.params.values():  # non-zero biases, so leaving them out is visible
        p += 0.1
    return net


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 1, 4, 4)), rng.integers(0, 3, 4)


@pytest.mark.parametrize("l2, l1", [(0.3, 0.0), (0.0, 0.2), (0.1, 0.05)])
def test_penalty_and_gradient_on_weights_only(l2, l1):
    x, t = _data()
    plain = _net(None)
    decayed = _net(optim.WeightDecay(l2=l2, l1=l1))
    base = plain.loss(x, t)
    plain.backward()
    weights = [k for k in decayed.params if k.endswith(".W")]
    assert weights == ["0.W", "3.W", "5.0.W", "6.W"]
    penalty = sum(0.5 * l2 * (decayed.params[k] ** 2).sum() + l1 * np.abs(decayed.params[k]).sum()
                  for k in weights)
    assert decayed.loss(x, t) == pytest.approx(base + penalty, rel=1e-12)
    decayed.backward()
    for k, g in decayed.grads.items():
        w = decayed.params[k]
        extra = l2 * w + l1 * np.sign(w) if k in weights else 0.0
        np.testing.assert_allclose(g, plain.grads[k] + extra, rtol=1e-12, atol=1e-15)


def test_decayed_model_passes_a_numerical_gradient_check():
    x, t = _data(1)
    net = _net(optim.WeightDecay(l2=0.2, l1=0.05))
    net.loss(x, t)
    net.backward()
    for k, p in net.params.items():
        assert np.abs(p).min() > 1e-3  # L1 kink at 0 is away from every weight
        num = numerical_gradient(lambda: net.loss(x, t), p)
        np.testing.assert_allclose(net.grads[k], num, rtol=1e-5, atol=1e-7, err_msg=k)


def test_per_layer_rules_names_and_containers():
    wd = optim.WeightDecay(l2=0.1, layers={
        "0": None,                                  # conv: no decay
        "3": {"l2": 1.0, "names": ("W", "b")},      # this Affine: its bias too, stronger
        "5": {"l1": 0.5},                           # container: inherited by its child
    })
    net = _net(wd)
    targets = {name: (l2, l1) for name, _, _, l2, l1 in wd.targets(net.layers)}
    assert targets == {"3.W": (1.0, 0.0), "3.b": (1.0, 0.0), "5.0.W": (0.1, 0.5),
                       "6.W": (0.1, 0.0)}
    by_object = optim.WeightDecay(l2=0.1, layers={net.layers[6]: None})
    assert [n for n, *_ in by_object.targets(net.layers)] == ["0.W", "3.W", "5.0.W"]
    net.layers[3].trainable = False
    assert "3.W" not in {n for n, *_ in wd.targets(net.layers)}


def test_decay_shrinks_weights_in_training():
    x, t = _data(2)
    runs = {}
    for name, wd in [("none", None), ("l2", optim.WeightDecay(l2=0.5)),
                     ("l1", optim.WeightDecay(l1=0.05))]:
        net = _net(wd)
        opt = optim.SGD(lr=0.1)
        for _ in range(100):
            net.loss(x, t)
            net.backward()
            opt.update(net.params, net.grads)
        runs[name] = net.params["3.W"]
    assert np.linalg.norm(runs["l2"]) < 0.7 * np.linalg.norm(runs["none"])
    # L1 drives weights to (a neighbourhood of) zero: many tiny ones
    assert (np.abs(runs["l1"]) < 0.01).sum() > 3 * (np.abs(runs["none"]) < 0.01).sum()


def test_float32_model_keeps_float32_grads():
    net = Sequential([L.Affine(3, 2, rng=0)], loss=L.MeanSquaredError(),
                     weight_decay=optim.WeightDecay(l2=0.1))
    x = np.ones((2, 3), np.float32)
    loss = net.loss(x, np.zeros((2, 2), np.float32))
    net.backward()
    assert isinstance(loss, float) and net.grads["0.W"].dtype == np.float32


@pytest.mark.parametrize("kwargs, match", [
    (dict(l2=-0.1), "l2"), (dict(l1=float("inf")), "l1"), (dict(names=[1]), "names"),
    (dict(layers={0: None}), "layers keys"), (dict(layers={"0": {"lr": 1}}), "rule"),
    (dict(layers={"0": {"l2": -1}}), "l2"),
])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.WeightDecay(**kwargs)


def test_backward_without_loss_is_a_clear_error():
    wd = optim.WeightDecay(l2=0.1)
    layer = L.Affine(2, 2, rng=0)
    layer.grads = {}
    with pytest.raises(ValueError, match="no gradient"):
        wd.add_grads([layer])
