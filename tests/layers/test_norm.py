"""BatchNorm layer behaviour: running statistics, modes, freezing, save/load, bad input."""
import numpy as np
import pytest

import cdl
from cdl.data import load_digits
from cdl import layers as L


def test_defaults_and_buffers():
    bn = L.BatchNorm(4)
    assert set(bn.params) == {"gamma", "beta"} and set(bn.buffers) == {"running_mean", "running_var"}
    np.testing.assert_array_equal(bn.params["gamma"], 1)
    np.testing.assert_array_equal(bn.params["beta"], 0)
    np.testing.assert_array_equal(bn.running_mean, 0)
    np.testing.assert_array_equal(bn.running_var, 1)
    assert bn.running_mean is bn.buffers["running_mean"]
    assert bn.momentum == 0.9 and bn.eps == 1e-5
    assert bn.params["gamma"].dtype == np.float32


def test_training_output_is_normalised_per_channel(rng):
    x = (rng.standard_normal((8, 3, 5, 5)) * [[[[2.0]], [[0.1]], [[30.0]]]] + 7).astype(np.float32)
    y = L.BatchNorm(3).forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


def test_running_statistics_update_with_unbiased_variance(rng):
    bn = L.BatchNorm(2, momentum=0.8)
    x = rng.standard_normal((6, 2, 2, 2)) * 3 + 1
    bn.forward(x)
    m = 6 * 2 * 2
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)) * m / (m - 1)
    np.testing.assert_allclose(bn.running_mean, 0.2 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.8 + 0.2 * var, rtol=1e-5)
    x2 = rng.standard_normal((6, 2, 2, 2))
    bn.forward(x2)
    np.testing.assert_allclose(bn.running_mean, 0.8 * 0.2 * mean + 0.2 * x2.mean(axis=(0, 2, 3)),
                               rtol=1e-5, atol=1e-7)


def test_running_statistics_converge_to_population(rng):
    bn = L.BatchNorm(3, momentum=0.9)
    for _ in range(200):
        bn.forward((rng.standard_normal((32, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.0]).astype(np.float32))
    np.testing.assert_allclose(bn.running_mean, [3.0, -1.0, 0.0], atol=0.15)
    np.testing.assert_allclose(bn.running_var, [1.0, 4.0, 0.25], rtol=0.15)


def test_inference_updates_nothing_and_is_per_sample(rng):
    bn = L.BatchNorm(3)
    bn.forward(rng.standard_normal((10, 3)).astype(np.float32))
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = bn.forward(x, train=False)
    np.testing.assert_array_equal(bn.running_mean, rm)
    np.testing.assert_array_equal(bn.running_var, rv)
    np.testing.assert_allclose(bn.forward(x[:1], train=False), y[:1], rtol=1e-6)


def test_frozen_layer_uses_and_keeps_running_statistics(rng):
    bn = L.BatchNorm(2)
    bn.running_mean = [1.0, -1.0]
    bn.running_var = [4.0, 0.25]
    bn.trainable = False
    x = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    y_train = bn.forward(x, train=True)
    np.testing.assert_allclose(y_train, bn.forward(x, train=False))
    np.testing.assert_allclose(bn.running_mean, [1.0, -1.0])
    np.testing.assert_allclose(bn.running_var, [4.0, 0.25])
    dx = bn.backward(np.ones_like(y_train))
    np.testing.assert_allclose(dx[:, 0], 1 / np.sqrt(4 + 1e-5), rtol=1e-6)
    net = cdl.Sequential([L.Flatten(), L.Affine(18, 2), L.BatchNorm(2)])
    net.layers[2].trainable = False
    assert list(net.params) == ["1.W", "1.b"]


def test_float64_input_with_float32_params(rng):
    bn = L.BatchNorm(3)
    y = bn.forward(rng.standard_normal((4, 3, 2, 2)))
    assert y.dtype == np.float64
    bn.backward(np.ones_like(y))
    assert bn.grads["gamma"].dtype == np.float32 and bn.running_mean.dtype == np.float32


def test_save_and_load_carry_running_statistics(tmp_path, rng):
    net = cdl.Sequential([L.Conv2D(1, 3, 3, pad=1, rng=0), L.BatchNorm(3), L.ReLU(), L.Flatten(),
                          L.Affine(3 * 4 * 4, 2, rng=0)], loss=L.SoftmaxCrossEntropy())
    x = rng.standard_normal((8, 1, 4, 4)).astype(np.float32)
    for _ in range(3):
        net.loss(x, rng.integers(0, 2, 8))
    assert "buffers/1.running_mean" in net.state()
    net.save(tmp_path / "m.npz")
    back = cdl.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.layers[1].running_var, net.layers[1].running_var)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert back.layers[1].momentum == 0.9


def test_running_setters_validate_shape():
    bn = L.BatchNorm(3)
    with pytest.raises(ValueError, match=r"BatchNorm\(3\): running_var must have shape \(3,\)"):
        bn.running_var = np.ones(4)


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 2, 2)])
def test_wrong_feature_count(shape):
    with pytest.raises(ValueError, match=r"BatchNorm\(3\): input of shape .* expected 3"):
        L.BatchNorm(3).forward(np.zeros(shape, np.float32))


def test_wrong_rank_and_dtype():
    with pytest.raises(ValueError, match="BatchNorm: expected 2-D or 4-D"):
        L.BatchNorm(3).forward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="float32 or float64"):
        L.BatchNorm(3).forward(np.zeros((2, 3), np.int64))


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1, 1)])
def test_batch_of_one_value_per_feature_is_refused_in_training(shape):
    bn = L.BatchNorm(3)
    with pytest.raises(ValueError, match="at least 2 values per feature"):
        bn.forward(np.ones(shape, np.float32))
    assert bn.forward(np.ones(shape, np.float32), train=False).shape == shape


def test_one_image_of_several_pixels_is_fine():
    y = L.BatchNorm(2).forward(np.arange(16, dtype=np.float32).reshape(1, 2, 2, 4))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_features": 0}, "num_features must be a positive int"),
    ({"num_features": 3, "momentum": 1.5}, r"momentum must be in \[0, 1\]"),
    ({"num_features": 3, "eps": 0.0}, "eps must be a positive number"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.BatchNorm(**kwargs)


def test_backward_before_forward_and_wrong_dout():
    bn = L.BatchNorm(2)
    with pytest.raises(RuntimeError, match="before forward"):
        bn.backward(np.ones((3, 2), np.float32))
    bn.forward(np.ones((3, 2), np.float32) * [[1], [2], [3]])
    with pytest.raises(ValueError, match="dout has shape"):
        bn.backward(np.ones((3, 3), np.float32))


def test_batchnorm_makes_deep_net_trainable_at_bad_init(rng):
    """A sigmoid MLP with tiny weights barely learns; the same net with BatchNorm does."""
    (x, t), _ = load_digits(flatten=True)
    x, t = x[:300], t[:300]

    def net(bn):
        layers = []
        for i in range(4):
            layers.append(L.Affine(64 if i == 0 else 32, 32, init=cdl.init.normal(0.01), rng=i))
            if bn:
                layers.append(L.BatchNorm(32))
            layers.append(L.Sigmoid())
        layers.append(L.Affine(32, 10, rng=9))
        return cdl.Sequential(layers, loss=L.SoftmaxCrossEntropy())

    accs = []
    for bn in (False, True):
        model = net(bn)
        cdl.Trainer(model, cdl.optim.SGD(lr=0.1), batch_size=30, epochs=8, seed=0,
                    verbose=False).fit(x, t)
        accs.append(model.accuracy(x, t))
    assert accs[0] < 0.3 and accs[1] > 0.8, accs


def test_a_frozen_batchnorm_normalizes_with_its_running_statistics_in_training(rng):
    bn = L.BatchNorm(3)
    bn.running_mean[...] = [0.5, -1.0, 2.0]
    bn.running_var[...] = [4.0, 0.25, 1.0]
    bn.trainable = False
    x = rng.standard_normal((6, 3, 2, 2)).astype(np.float32)
    y = bn.forward(x, train=True)
    np.testing.assert_array_equal(y, bn.forward(x, train=False))
    want = (x - bn.running_mean[None, :, None, None]) / \
        np.sqrt(bn.running_var[None, :, None, None] + bn.eps)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(bn.running_mean, [0.5, -1.0, 2.0])
