"""Greedy layer-wise supervised pretraining."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.data import load_digits
from cdl.optim import SGD
from cdl.pretrain import greedy_pretrain


class Stages(cdl.Callback):
    """Records, per stage, the model's layers and the first Affine's W before and after."""

    def __init__(self):
        self.stages = []

    def on_train_begin(self, trainer):
        self.stages.append({"layers": list(trainer.model.layers),
                            "params": sorted(trainer.model.params),
                            "W0": trainer.model.layers[0].params["W"].copy()})

    def on_train_end(self, trainer):
        self.stages[-1]["W1"] = trainer.model.layers[0].params["W"].copy()


def widths(*sizes):
    """Builders of Affine(sizes[k], sizes[k + 1]) + Tanh blocks."""
    return [lambda a=a, b=b: [L.Affine(a, b), L.Tanh()] for a, b in zip(sizes, sizes[1:])]


@pytest.fixture(scope="module")
def digits():
    (x, t), (xt, tt) = load_digits(flatten=True)
    return x[:200], t[:200], xt, tt


@pytest.mark.parametrize("freeze_lower", [False, True])
def test_stages_grow_the_net_under_fresh_heads(digits, freeze_lower):
    x, t, _, _ = digits
    rec, heads = Stages(), []

    def head(n):
        heads.append(L.Affine(n, 10))
        return heads[-1]

    net = greedy_pretrain(widths(64, 32, 16, 8), head, lambda: SGD(lr=0.3), x, t,
                          epochs_per_stage=2, seed=0, freeze_lower=freeze_lower,
                          batch_size=50, callbacks=[rec])
    assert [h.in_features for h in heads] == [32, 16, 8]
    assert [len(s["layers"]) for s in rec.stages] == [3, 5, 7]
    for k, s in enumerate(rec.stages):  # the lower layers are the same objects, the head is new
        assert s["layers"][:-1] == net.layers[:2 * k + 2] and s["layers"][-1] is heads[k]
        moved = not np.array_equal(s["W0"], s["W1"])  # the first layer trained this stage
        assert moved == (k == 0 or not freeze_lower)
        if freeze_lower:
            assert s["params"] == sorted(f"{i}.{p}" for i in (2 * k, 2 * k + 2) for p in "Wb")
    assert net.layers[-1] is heads[-1] and len(net.layers) == 7
    assert all(layer.trainable for layer in net.layers)
    assert len(net.params) == 8 and len(net.pretrain_histories) == 3
    assert all(len(h["loss"]) == 2 for h in net.pretrain_histories)


def test_pretrained_net_learns_and_repeats_by_seed(digits):
    x, t, xt, tt = digits

    def run(seed):
        return greedy_pretrain(widths(64, 32, 32), lambda n: L.Affine(n, 10),
                               lambda: SGD(lr=0.3), x, t, epochs_per_stage=3, seed=seed,
                               batch_size=20)

    net = run(1)
    assert net.accuracy(xt, tt) > 0.5  # chance is 0.1
    np.testing.assert_array_equal(net.predict(xt), run(1).predict(xt))
    assert not np.array_equal(net.layers[0].params["W"], run(2).layers[0].params["W"])
    h = cdl.Trainer(net, SGD(lr=0.3), epochs=1, batch_size=20, seed=0, verbose=False).fit(x, t)
    assert np.isfinite(h["loss"][0])  # fine-tuning goes on as usual


def test_flags_set_by_the_builder_are_kept(digits):
    x, t, _, _ = digits

    def frozen():
        layer = L.Affine(64, 16)
        layer.trainable = False
        return [layer, L.Tanh()]

    net = greedy_pretrain([frozen, *widths(16, 8)], lambda n: L.Affine(n, 10),
                          lambda: SGD(lr=0.1), x[:40], t[:40], epochs_per_stage=1, seed=0)
    assert [layer.trainable for layer in net.layers] == [False, True, True, True, True]


def test_bad_input(digits):
    x, t, _, _ = digits
    opt = lambda: SGD(lr=0.1)  # noqa: E731
    with pytest.raises(ValueError, match="hidden_builders must be a non-empty list"):
        greedy_pretrain([], lambda n: L.Affine(n, 10), opt, x, t)
    with pytest.raises(ValueError, match="hidden builder 0 returned int, not a cdl Layer"):
        greedy_pretrain([lambda: 3], lambda n: L.Affine(n, 10), opt, x, t)
    with pytest.raises(ValueError, match=r"head_builder\(32\) returned str"):
        greedy_pretrain(widths(64, 32), lambda n: "head", opt, x, t)
    with pytest.raises(ValueError, match="199 targets for 200 samples"):
        greedy_pretrain(widths(64, 32), lambda n: L.Affine(n, 10), opt, x, t[:-1])
