"""small_cnn and mlp (cdl.models.small): the models of `cdl train` on the 8x8 digits."""
import numpy as np

from cdl.models import mlp, small_cnn


def _types(net):
    return [type(layer).__name__ for layer in net.layers]


def test_small_cnn_layout():
    net = small_cnn(channels=4, hidden=5, rng=0)
    assert _types(net) == ["Conv2D", "ReLU", "Conv2D", "ReLU", "MaxPool2D", "Flatten", "Affine",
                           "ReLU", "Affine"]
    assert net.input_shape == (1, 8, 8)
    assert net.layers[6].params["W"].shape == (4 * 4 * 4, 5)
    assert net.layers[-1].params["W"].shape == (5, 10)


def test_mlp_layout_on_any_input_shape():
    net = mlp(input_shape=(3, 2, 2), num_classes=4, hidden=(7, 6), rng=0)
    assert _types(net) == ["Flatten", "Affine", "ReLU", "Affine", "ReLU", "Affine"]
    assert [l.params["W"].shape for l in net.layers if l.params] == [(12, 7), (7, 6), (6, 4)]
    assert net.predict(np.zeros((2, 3, 2, 2), np.float32)).shape == (2, 4)


def test_same_seed_same_weights():
    a, b, c = small_cnn(rng=3), small_cnn(rng=3), small_cnn(rng=4)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params if k.endswith("W"))


def test_small_cnn_learns_a_batch(rng):
    net = small_cnn(channels=4, hidden=16, rng=0)
    x = rng.uniform(0, 1, (20, 1, 8, 8)).astype(np.float32)
    t = rng.integers(0, 10, 20)
    first = net.loss(x, t)
    for _ in range(30):
        net.loss(x, t)
        net.backward()
        for k, p in net.params.items():
            p -= 0.1 * net.grads[k]
    assert net.loss(x, t) < 0.75 * first  # about 0.6 after 30 steps
