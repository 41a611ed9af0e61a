"""cdl.precision (issue 21): mixed-precision training and float16 inference."""
import re

import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl import optim
from cdl.cli import main
from cdl.data import load_digits
from cdl.model import walk
from cdl.models import mlp, small_cnn
from cdl.precision import (LossScaler, MixedPrecision, cached_bytes, nbytes, to_float16)

from .conftest import host, on


@pytest.fixture(scope="module")
def digits():
    (x, t), (xt, tt) = load_digits()
    return x, t, xt, tt


class _Counting:
    """An optimizer that records its calls and moves nothing."""

    def __init__(self):
        self.calls = 0

    def update(self, params, grads):
        self.calls += 1


# -- one mixed-precision step ------------------------------------------------------------

def test_gradients_match_float32_within_float16_rounding(digits):
    """Within 3 % in norm: rounding the activations flips a few ReLUs near 0 (2 of the
    4096 units of the hidden Affine here), which moves the cancelling sums of the lower
    layers' gradients by 1-2 % (the last layer's by 0.1 %)."""
    x, t, _, _ = digits
    xb, tb = x[:64].copy(), t[:64].copy()
    ref = small_cnn(rng=0)
    net = small_cnn(rng=0)
    loss32 = ref.loss(xb, tb)
    ref.backward(input_grad=False)
    mp = MixedPrecision(net)
    loss16 = mp.loss(xb, tb)
    mp.backward()
    assert loss16 == pytest.approx(loss32, rel=2e-3)
    grads = net.grads
    assert mp.scaler.unscale(grads)
    for k, g in ref.grads.items():
        assert grads[k].dtype == np.float32
        err = np.linalg.norm(grads[k] - g) / np.linalg.norm(g)
        assert err < 3e-2, (k, err)


def test_caches_are_float16_half_the_bytes_and_dropped_after_backward(digits):
    x, t, _, _ = digits
    xb, tb = x[:50].copy(), t[:50].copy()
    net = small_cnn(rng=0)
    net.loss(xb, tb)
    full = cached_bytes(net)
    mp = MixedPrecision(net)
    mp.loss(xb, tb)
    assert cached_bytes(net) * 2 == full
    for _, layer in walk(net.layers):
        for k, v in vars(layer).items():
            if k.startswith("_") and isinstance(v, np.ndarray):
                assert v.dtype == np.float16, (layer.name, k)
    for v in net.state().values():
        assert v.dtype == np.float32  # master weights untouched
    mp.backward()
    assert cached_bytes(net) == 0


def test_overflow_skips_the_step_and_halves_the_scale(digits):
    x, t, _, _ = digits
    net = small_cnn(rng=0)
    before = {k: v.copy() for k, v in net.params.items()}
    mp = MixedPrecision(net, LossScaler(init_scale=2.0 ** 40))  # dL/dy * 2^40 > 65504
    opt = _Counting()
    mp.loss(x[:20], t[:20])
    mp.backward()
    assert not mp.update(opt)
    assert opt.calls == 0 and mp.scaler.scale == 2.0 ** 39 and mp.scaler.skipped == 1
    for k, v in net.params.items():
        np.testing.assert_array_equal(v, before[k])
    mp.scaler.scale = 1024.0
    mp.loss(x[:20], t[:20])
    mp.backward()
    assert mp.update(opt) and opt.calls == 1


def test_scaling_keeps_small_gradients_that_float16_would_flush_to_zero():
    """Without a scale, dL/dy of 1e-8 underflows float16 (its smallest step is 6e-8)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    t = rng.integers(0, 3, 8)

    def grad_w(scale):
        net = cdl.Sequential([L.Affine(4, 3, rng=0)], loss=L.SoftmaxCrossEntropy())
        mp = MixedPrecision(net, LossScaler(init_scale=scale))
        mp.loss(x, t)
        net.loss_layer.backward = _scaled(net.loss_layer.backward, 1e-8)
        mp.backward()
        mp.scaler.unscale(net.grads)
        return net.grads["0.W"]

    assert not grad_w(1.0).any()                  # all flushed to zero
    assert np.count_nonzero(grad_w(2.0 ** 16)) == 12  # kept


def _scaled(backward, factor):
    return lambda dout=1.0: backward(dout * factor)


def test_weight_decay_is_added_after_unscaling(digits):
    """grads = the unscaled gradient of the loss + l2 W (not l2 W / scale)."""
    x, t, _, _ = digits
    grads = []
    for decay in (None, optim.WeightDecay(l2=0.1)):
        net = small_cnn(rng=0)
        net.weight_decay = decay
        mp = MixedPrecision(net)
        mp.loss(x[:30], t[:30])
        mp.backward()
        mp.update(_Counting())
        grads.append(net.grads)
    for k, g in grads[0].items():
        expected = g + 0.1 * net.params[k] if k.endswith("W") else g
        np.testing.assert_allclose(grads[1][k], expected, rtol=1e-5, atol=1e-7, err_msg=k)


def test_a_float64_model_or_another_precision_is_refused():
    with pytest.raises(ValueError, match="float32 model"):
        MixedPrecision(mlp(rng=0).astype(np.float64))
    with pytest.raises(ValueError, match="precision must be"):
        cdl.Trainer(mlp(rng=0), optim.SGD(), precision="bfloat16")


# -- training ----------------------------------------------------------------------------

def _train(digits, precision, epochs=4, **kw):
    x, t, xt, tt = digits
    net = small_cnn(channels=8, hidden=32, rng=0)
    tr = cdl.Trainer(net, optim.Adam(lr=3e-3), batch_size=32, epochs=epochs, seed=0,
                     verbose=False, precision=precision, **kw)
    tr.fit(x, t)
    return net, tr, net.accuracy(xt, tt)


@pytest.mark.slow
def test_float16_training_reaches_float32_accuracy(digits):
    """The small CNN on the digits (about 6 s here): test accuracy within 1 point."""
    _, _, acc32 = _train(digits, "float32")
    net, tr, acc16 = _train(digits, "float16")
    assert acc32 > 0.93 and abs(acc16 - acc32) <= 0.01
    assert tr.scaler.steps == 4 * 45 and tr.scaler is tr.callbacks[-1]
    assert all(v.dtype == np.float32 for v in net.state().values())


def test_float16_run_resumes_from_a_checkpoint_bit_for_bit(digits, tmp_path):
    x, t, _, _ = digits
    x, t = x[:256], t[:256]

    def trainer(epochs, path=None):
        net = mlp(hidden=(16,), rng=0)
        scaler = LossScaler(init_scale=2.0 ** 20, growth_interval=3)
        return cdl.Trainer(net, optim.Adam(lr=1e-2), batch_size=32, epochs=epochs, seed=0,
                           verbose=False, precision=scaler, checkpoint=path)

    whole = trainer(2)
    whole.fit(x, t)
    first = trainer(1, tmp_path / "run.npz")
    first.fit(x, t)
    rest = trainer(1)
    rest.load_checkpoint(tmp_path / "run.npz")
    assert rest.scaler.state_dict() == first.scaler.state_dict()
    assert rest.scaler.steps == 8 and rest.scaler.scale != 2.0 ** 20
    rest.fit(x, t)
    assert rest.scaler.state_dict() == whole.scaler.state_dict()
    for k, v in whole.model.params.items():
        np.testing.assert_array_equal(rest.model.params[k], v)
    plain = cdl.Trainer(mlp(hidden=(16,), rng=0), optim.Adam(lr=1e-2), verbose=False)
    with pytest.raises(ValueError, match="LossScaler"):  # a float32 trainer: not this run
        plain.load_checkpoint(tmp_path / "run.npz")


def test_cdl_train_precision_float16(capsys):
    assert main(["train", "--epochs", "1", "--model", "mlp", "--precision", "float16"]) == 0
    out = capsys.readouterr().out
    acc = float(re.search(r"test accuracy ([0-9.]+)", out).group(1))
    assert acc > 0.5 and re.search(r"float16: loss scale \d+, \d+ of 45 steps skipped", out)


# -- float16 inference -------------------------------------------------------------------

def test_float16_inference_halves_the_bytes_and_matches_float32(digits):
    x, t, xt, tt = digits
    net = small_cnn(rng=0)
    cdl.Trainer(net, optim.Adam(lr=3e-3), batch_size=64, epochs=1, seed=0,
                verbose=False).fit(x[:640], t[:640])
    before = {k: v.copy() for k, v in net.state().items()}
    half = net.half()
    assert nbytes(half) * 2 == nbytes(net)
    assert all(v.dtype == np.float16 for v in half.state().values())
    for k, v in net.state().items():  # the float32 model is unchanged
        np.testing.assert_array_equal(v, before[k])
    y32, y16 = net.predict(xt), half.predict(xt)
    assert y16.dtype == np.float32
    np.testing.assert_allclose(y16, y32, rtol=0.02, atol=0.02)
    assert np.mean(y16.argmax(1) == y32.argmax(1)) >= 0.99
    assert abs(half.accuracy(xt, tt) - net.accuracy(xt, tt)) <= 0.005
    assert "float16" in half.summary(print_fn=None)
    with pytest.raises(RuntimeError):
        half.loss(xt, tt)
    with pytest.raises(RuntimeError):
        half.save("never.npz")


def test_float16_inference_with_batchnorm_and_dropout(rng):
    net = cdl.Sequential([L.Affine(6, 8, rng=0), L.BatchNorm(8), L.ReLU(), L.Dropout(0.3),
                          L.Affine(8, 3, rng=0)], loss=L.SoftmaxCrossEntropy())
    x = rng.standard_normal((16, 6)).astype(np.float32)
    net.loss(x, rng.integers(0, 3, 16))  # running statistics move; caches are left behind
    half = to_float16(net)
    assert half.layers[1].buffers["running_var"].dtype == np.float16
    assert half.layers[0]._x is None  # the copy holds no forward caches
    np.testing.assert_allclose(half.predict(x), net.predict(x), rtol=0.02, atol=0.02)


def test_values_beyond_float16_range_are_refused():
    net = mlp(hidden=(4,), rng=0)
    net.params["1.W"][0, 0] = 1e5
    with pytest.raises(ValueError, match="1.W .*65504"):
        to_float16(net)


# -- on the device (the CUDA simulator without a GPU) -----------------------------------

@pytest.mark.slow
def test_mixed_step_on_the_device_matches_the_cpu(device):
    """A step and float16 inference on the GPU (8 s in the simulator)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    t = np.array([0, 2, 1])

    def step(dev):
        net = cdl.Sequential([L.Affine(5, 4, rng=0), L.ReLU(), L.Affine(4, 3, rng=1)],
                             loss=L.SoftmaxCrossEntropy())
        if dev == "cuda":
            net.to_device()
        mp = MixedPrecision(net)
        loss = mp.loss(*on(dev, x, t))
        mp.backward()
        assert mp.update(optim.SGD(lr=0.1))
        return loss, {k: host(v) for k, v in net.params.items()}, net

    loss, params, net = step(device)
    ref_loss, ref_params, _ = step("cpu")
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for k, v in ref_params.items():
        np.testing.assert_allclose(params[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    half = to_float16(net)
    np.testing.assert_allclose(host(half.predict(on(device, x))), net.to_host().predict(x),
                               rtol=0.02, atol=0.02)
