"""Dropout, DropConnect and GaussianNoise: masks, scaling, seeding, held noise, save/load."""
import numpy as np
import pytest

import cdl
from cdl import layers as L


def test_dropout_is_inverted_and_identity_at_inference(rng):
    x = rng.uniform(1, 2, (200, 50)).astype(np.float32)
    d = L.Dropout(0.3, rng=0)
    y = d.forward(x, train=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    assert abs(y.mean() / x.mean() - 1) < 0.02
    assert d.forward(x, train=False) is x or np.array_equal(d.forward(x, train=False), x)
    assert y.dtype == np.float32


def test_dropout_backward_uses_the_forward_mask(rng):
    x = rng.uniform(1, 2, (6, 7))
    d = L.Dropout(0.5, rng=1)
    y = d.forward(x)
    dout = rng.standard_normal(y.shape)
    keep = dout.copy()
    dx = d.backward(dout)
    np.testing.assert_allclose(dx, dout * y / x)
    np.testing.assert_array_equal(dout, keep)


def test_dropout_seeding():
    x = np.ones((5, 8))
    a, b = L.Dropout(0.5, rng=3), L.Dropout(0.5, rng=3)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert not np.array_equal(a.forward(x), a.forward(x))  # the stream moves on
    cdl.seed(7)
    first = L.Dropout(0.5).forward(x)
    cdl.seed(7)
    np.testing.assert_array_equal(L.Dropout(0.5).forward(x), first)


def test_ratio_zero_keeps_everything(rng):
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(L.Dropout(0.0).forward(x), x)


def test_hold_noise_fixes_the_mask_and_is_restored():
    x = np.ones((4, 9))
    d = L.Dropout(0.5, rng=0)
    with d.hold_noise():
        first = d.forward(x)
        np.testing.assert_array_equal(d.forward(x), first)
        assert d.forward(np.ones((2, 3))).shape == (2, 3)  # a new shape draws anew
    assert not d._noise_held
    outs = {d.forward(x).tobytes() for _ in range(3)}
    assert len(outs) == 3


def test_hold_noise_reaches_into_containers():
    inner = L.Dropout(0.5, rng=0)
    block = L.Residual(L.Affine(4, 4, rng=0), inner)
    x = np.ones((3, 4), np.float32)
    with block.hold_noise():
        assert inner._noise_held
        np.testing.assert_array_equal(block.forward(x), block.forward(x))
    assert not inner._noise_held


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, "0.5", True, float("nan")])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match=r"Dropout: ratio must be a number in \[0, 1\)"):
        L.Dropout(ratio)
    with pytest.raises(ValueError, match=r"DropConnect: ratio must be a number in \[0, 1\)"):
        L.DropConnect(L.Affine(2, 2), ratio)


def test_dropout_bad_input():
    with pytest.raises(ValueError, match="Dropout: .*float32 or float64"):
        L.Dropout(0.5).forward(np.ones((2, 3), np.int32))
    d = L.Dropout(0.5)
    with pytest.raises(RuntimeError, match="before forward"):
        d.backward(np.ones((2, 3)))
    d.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="dout has shape"):
        d.backward(np.ones((3, 2)))


def test_gaussian_noise(rng):
    x = np.zeros((400, 50), np.float32)
    g = L.GaussianNoise(0.5, rng=0)
    y = g.forward(x)
    assert abs(y.std() - 0.5) < 0.01 and abs(y.mean()) < 0.01 and y.dtype == np.float32
    np.testing.assert_array_equal(g.forward(x, train=False), x)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(g.backward(dout), dout)
    with pytest.raises(ValueError, match="GaussianNoise: std must be a finite number >= 0"):
        L.GaussianNoise(-1.0)


def test_dropconnect_drops_weights_not_outputs(rng):
    inner = L.Affine(50, 40, rng=0)
    inner.params["b"][:] = 1.0
    dc = L.DropConnect(inner, 0.5, rng=1)
    x = rng.standard_normal((3, 50)).astype(np.float32)
    y = dc.forward(x)
    mask = dc._mask
    assert set(np.unique(mask)) == {0.0, 2.0}
    np.testing.assert_allclose(y, x @ (inner.params["W"] * mask) + 1.0, rtol=1e-5, atol=1e-5)
    # the full weights are back in place, and inference uses them unscaled
    np.testing.assert_allclose(dc.forward(x, train=False), x @ inner.params["W"] + 1.0, rtol=1e-6)
    dout = rng.standard_normal(y.shape).astype(np.float32)
    dx = dc.backward(dout)
    np.testing.assert_allclose(dx, dout @ (inner.params["W"] * mask).T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dc.grads["W"], (x.T @ dout) * mask, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dc.grads["b"], dout.sum(axis=0), rtol=1e-5)


def test_dropconnect_expectation_matches_inference(rng):
    dc = L.DropConnect(L.Conv2D(2, 3, 3, pad=1, rng=0), 0.4, rng=0)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    mean = np.mean([dc.forward(x) for _ in range(2000)], axis=0)
    np.testing.assert_allclose(mean, dc.forward(x, train=False), atol=0.1)


def test_dropconnect_flat_names_and_save_load(tmp_path, rng):
    net = cdl.Sequential([L.Flatten(), L.DropConnect(L.Affine(8, 6, rng=0), 0.5, rng=0), L.ReLU(),
                          L.Affine(6, 2, rng=0)], loss=L.SoftmaxCrossEntropy())
    assert list(net.params) == ["1.W", "1.b", "3.W", "3.b"]
    assert net.params["1.W"] is net.layers[1].layer.params["W"]
    x = rng.standard_normal((5, 2, 2, 2)).astype(np.float32)
    t = rng.integers(0, 2, 5)
    opt = cdl.optim.SGD(lr=0.1)
    before = net.params["1.W"].copy()
    net.loss(x, t)
    net.backward()
    opt.update(net.params, net.grads)
    assert not np.array_equal(net.params["1.W"], before)
    net.save(tmp_path / "dc.npz")
    back = cdl.load(tmp_path / "dc.npz")
    assert isinstance(back.layers[1], L.DropConnect) and back.layers[1].ratio == 0.5
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_dropconnect_float64_cast_reaches_the_wrapped_layer():
    dc = L.DropConnect(L.Affine(3, 2), 0.5).astype(np.float64)
    assert dc.layer.params["W"].dtype == np.float64 and dc.params["W"] is dc.layer.params["W"]


def test_dropconnect_takes_ratio_first_too():
    dc = L.DropConnect(0.25, L.Affine(3, 2))
    assert dc.ratio == 0.25 and isinstance(dc.layer, L.Affine)


def test_dropconnect_refuses_other_layers():
    with pytest.raises(ValueError, match="DropConnect: wraps an Affine or a Conv2D layer, got ReLU"):
        L.DropConnect(L.ReLU(), 0.5)


def test_dropout_in_a_model_drops_in_training_only(rng):
    """Same weights: identical predictions, but every training loss draws a new mask."""
    x = rng.standard_normal((64, 10)).astype(np.float32)
    t = rng.integers(0, 3, 64)
    plain = cdl.Sequential([L.Affine(10, 32, rng=0), L.ReLU(), L.Affine(32, 3, rng=0)],
                           loss=L.SoftmaxCrossEntropy())
    dropped = cdl.Sequential([L.Affine(10, 32, rng=0), L.ReLU(), L.Dropout(0.5, rng=0),
                              L.Affine(32, 3, rng=0)], loss=L.SoftmaxCrossEntropy())
    np.testing.assert_allclose(plain.predict(x), dropped.predict(x), rtol=1e-6)
    losses = [dropped.loss(x, t) for _ in range(5)]
    assert len(set(losses)) == 5


def test_model_gradient_with_dropout_and_batchnorm_matches_numerical(rng):
    """Sequential.hold_noise: the whole model is one function of its weights during the check."""
    net = cdl.Sequential([L.Affine(5, 6, rng=0), L.BatchNorm(6), L.Tanh(), L.Dropout(0.4, rng=1),
                          L.DropConnect(L.Affine(6, 3, rng=2), 0.3, rng=3), L.GaussianNoise(0.2, rng=4)],
                         loss=L.SoftmaxCrossEntropy()).astype(np.float64)
    x = rng.standard_normal((7, 5))
    t = rng.integers(0, 3, 7)
    with net.hold_noise():
        net.loss(x, t)
        net.backward()
        for name in ("0.W", "1.gamma", "4.W"):
            num = cdl.gradcheck.numerical_gradient(lambda: net.loss(x, t), net.params[name])
            np.testing.assert_allclose(net.grads[name], num, rtol=1e-5, atol=1e-8)
    assert len({net.loss(x, t) for _ in range(3)}) == 3  # fresh noise again outside the block


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_noise_kernels_draw_the_generators_stream(dtype):
    from cdl import kernels as K
    mask = K.dropout_mask(np.random.default_rng(9), 0.25, np.empty((3, 4), dtype))
    u = np.random.default_rng(9).random((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(mask, (u >= 0.25) * dtype(1 / 0.75))
    noise = K.gaussian_noise(np.random.default_rng(9), 0.5, np.empty((3, 4), dtype))
    np.testing.assert_array_equal(noise,
                                  np.random.default_rng(9).standard_normal((3, 4), dtype) * 0.5)
    x = np.arange(12, dtype=dtype).reshape(3, 4)
    np.testing.assert_array_equal(K.apply_mask(x, mask, np.empty_like(x)), x * mask)
