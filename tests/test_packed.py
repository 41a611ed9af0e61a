"""cdl.packed (Sequential.pack): same predictions, integer thresholds, bytes."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl import optim
from cdl.data import load_digits
from cdl.kernels import reference as ref
from cdl.models import MODELS, BinaryConvNet, BinaryMLP
from cdl.packed import PackedModel, _BinaryStage, _Threshold


def random_bn(c, rng, dead=0):
    """BatchNorm in inference mode with random statistics, some gamma < 0 and `dead` gamma = 0."""
    bn = L.BatchNorm(c)
    bn.running_mean = rng.normal(0, 4, c)
    bn.running_var = rng.uniform(0.3, 30, c)
    gamma = rng.normal(0, 1, c)
    gamma[:dead] = 0.0
    bn.params["gamma"][...] = gamma
    bn.params["beta"][...] = rng.normal(0, 1, c)
    return bn


def randomize(net, rng):
    for layer in net.layers:
        if isinstance(layer, (L.BinaryAffine, L.BinaryConv2D)):
            W = layer.params["W"]
            W[...] = rng.uniform(-1, 1, W.shape)
            if "b" in layer.params:
                layer.params["b"][...] = rng.normal(0, 2, layer.params["b"].shape)
    return net


def mlp(rng, scale):
    return cdl.Sequential([
        L.Flatten(), L.BinaryAffine(20, 70, scale=scale, binarize_input=False), random_bn(70, rng),
        L.BinaryAffine(70, 130, scale=scale), random_bn(130, rng, dead=3), L.Dropout(0.3),
        L.Binarize("stochastic"), L.BinaryAffine(130, 65), random_bn(65, rng),
        L.BinaryAffine(65, 5, scale=scale), random_bn(5, rng)], loss=L.SoftmaxCrossEntropy())


def cnn(rng, scale):
    return cdl.Sequential([
        L.BinaryConv2D(2, 8, 3, pad=1, scale=scale, binarize_input=False), random_bn(8, rng),
        L.BinaryConv2D(8, 16, 3, pad=1, scale=scale), L.MaxPool2D(2), random_bn(16, rng, dead=2),
        L.BinaryConv2D(16, 12, (3, 2), stride=(1, 2), pad=(2, 1)), random_bn(12, rng),
        L.Binarize(), L.MaxPool2D(2, stride=1),
        L.BinaryConv2D(12, 9, 2, stride=2, scale=scale, bias=False), random_bn(9, rng),
        L.Flatten(), L.BinaryAffine(9 * 2 * 1, 6), random_bn(6, rng)], loss=L.SoftmaxCrossEntropy())


@pytest.mark.slow
@pytest.mark.parametrize("build, x_shape", [(mlp, (60, 4, 5)), (cnn, (7, 2, 8, 10))])
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_model_reproduces_the_float_model(rng, build, x_shape, scale, dtype):
    net = randomize(build(rng, scale), rng).astype(dtype)
    x = rng.standard_normal(x_shape).astype(dtype)
    packed = net.pack()
    assert isinstance(packed, PackedModel)
    y = packed.predict(x)
    np.testing.assert_array_equal(y, net.predict(x))  # bit for bit, not just the argmax
    assert y.dtype == dtype
    assert sum(isinstance(s, _BinaryStage) and s.threshold is not None
               for s in packed.stages) >= 2  # the folding is exercised
    np.testing.assert_array_equal(packed.predict(x, batch_size=4), y)
    np.testing.assert_array_equal(packed.predict_proba(x), net.predict_proba(x))


def test_activations_stay_packed_between_binary_layers(rng):
    packed = randomize(mlp(rng, False), rng).pack()
    emitting = [s for s in packed.stages if isinstance(s, _BinaryStage) and s.emit_packed]
    assert len(emitting) == 2  # 70 -> 130 -> 65: thresholds write the next layer's input bits
    packed = randomize(cnn(rng, False), rng).pack()
    binary = [s for s in packed.stages if isinstance(s, _BinaryStage)]
    # conv -> pool -> conv stays packed; the float MaxPool after the third conv needs floats;
    # the last conv feeds the affine layer through Flatten in the pixel layout
    assert [s.emit_packed for s in binary] == [False, True, False, True, False]
    assert binary[-1].pixel_input == (9, 2)
    assert not [s for s in packed.stages if isinstance(getattr(s, "layer", None), L.Flatten)]


def test_thresholds_match_the_float_sign_for_every_integer(rng):
    """Exhaustive over [-n, n]: bit = P(dot) with P the float finish -> BatchNorm -> sign."""
    for scale in (False, True):
        layer = randomize(cdl.Sequential([L.BinaryAffine(37, 40, scale=scale)]), rng).layers[0]
        bn = random_bn(40, rng, dead=4)
        bn.params["gamma"][4:8] *= 1e-7  # nearly flat channels: ties at the rounding level
        stage = _BinaryStage(layer)
        th = _Threshold(stage, None, bn)
        dots = np.arange(-37, 38)[:, None].repeat(40, axis=1).astype(np.int32)
        float_signs = bn.forward(layer.finish(dots.astype(np.float32)), train=False) >= 0
        np.testing.assert_array_equal(ref.unpack_bits(th.bits(dots), 40) > 0, float_signs)
        assert not th.up.all()  # some channels decrease (gamma < 0)


def test_thresholds_agree_with_the_closed_form(rng):
    layer = cdl.Sequential([L.BinaryAffine(500, 64)]).layers[0]
    bn = random_bn(64, rng)
    bn.params["gamma"][...] = np.abs(bn.params["gamma"]) + 0.1
    th = _Threshold(_BinaryStage(layer), None, bn)
    g, b = bn.params["gamma"].astype(float), bn.params["beta"].astype(float)
    tau = bn.running_mean - b * np.sqrt(bn.running_var.astype(float) + bn.eps) / g
    closed = np.clip(np.ceil(tau), -501, 501)
    assert th.up.all() and np.abs(th.thr - closed).max() <= 1


def test_packed_weights_are_32x_smaller():
    net = BinaryMLP(input_shape=(1, 16, 16), hidden=(512, 512), rng=0)
    packed = net.pack()
    binary = [s for s in packed.stages if isinstance(s, _BinaryStage)]
    weight_bytes = sum(s.weights.nbytes for s in binary)
    float_weight_bytes = sum(l.params["W"].nbytes for l in net.layers
                             if isinstance(l, (L.BinaryAffine, L.BinaryConv2D)))
    assert float_weight_bytes / weight_bytes == pytest.approx(32, rel=0.02)  # 1 bit vs 32
    assert packed.float_bytes / packed.nbytes > 20  # BatchNorms and thresholds included
    assert f"{packed.nbytes} bytes packed" in repr(packed)


@pytest.mark.slow
def test_models_are_registered_and_have_float_twins():
    assert MODELS["binary_mlp"] is BinaryMLP and MODELS["binary_cnn"] is BinaryConvNet
    for cls in (BinaryMLP, BinaryConvNet):
        kw = dict(input_shape=(1, 8, 8), rng=0)
        net, twin = cls(**kw), cls.float_twin(**kw)
        assert net.num_params() == twin.num_params()
        assert [type(l).__name__ for l in twin.layers if "Binary" in type(l).__name__] == []


@pytest.mark.slow
def test_smoke_training_then_pack_gives_identical_predictions():
    (x, t), (xt, tt) = load_digits()
    cdl.seed(0)
    net = BinaryMLP(input_shape=x.shape[1:], hidden=(128, 128), rng=0)
    cdl.Trainer(net, optim.Adam(lr=3e-3), batch_size=50, epochs=3, seed=0,
                verbose=False).fit(x, t)
    packed = net.pack()
    np.testing.assert_array_equal(packed.predict(xt), net.predict(xt))
    assert packed.accuracy(xt, tt) == net.accuracy(xt, tt) > 0.6  # learned something


def test_pack_errors(rng):
    with pytest.raises(ValueError, match="inside containers"):
        cdl.Sequential([L.Chain(L.BinaryAffine(4, 3))]).pack()
    packed = randomize(mlp(rng, False), rng).pack()
    with pytest.raises(ValueError, match="packed BinaryAffine.*21 features"):
        packed.predict(np.zeros((2, 21), np.float32))
    packed = randomize(cnn(rng, False), rng).pack()
    with pytest.raises(ValueError, match="packed BinaryConv2D.*3 channels, expected 2"):
        packed.predict(np.zeros((2, 3, 8, 10), np.float32))
    with pytest.raises(ValueError, match="labels"):
        packed.accuracy(np.zeros((2, 2, 8, 10), np.float32), np.zeros(3))


def test_stages_accept_packed_or_float_inputs_alike(rng):
    net = randomize(cdl.Sequential([
        L.BinaryConv2D(3, 70, 3, pad=1), random_bn(70, rng), L.Flatten(),
        L.BinaryAffine(70 * 4 * 4, 8), random_bn(8, rng), L.BinaryAffine(8, 5)]), rng)
    conv, affine, last = [s for s in net.pack().stages if isinstance(s, _BinaryStage)]
    assert affine.pixel_input == (70, 16)
    pixels = conv.run(rng.standard_normal((4, 3, 4, 4)).astype(np.float32))
    rows = affine.run(pixels)
    np.testing.assert_array_equal(affine.run(pixels.to_float()).words, rows.words)
    np.testing.assert_array_equal(last.run(rows), last.run(rows.to_float()))
