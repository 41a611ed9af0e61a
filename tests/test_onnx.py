"""cdl.export_onnx: every supported layer, run in onnxruntime, matches model.predict to 1e-5.

The tests that run an exported file need the optional packages onnx and
onnxruntime (``pip install "cdl[onnx]" onnxruntime``) and skip without them.
"""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl import models
from cdl.layers.base import Layer
from cdl.model import Sequential, walk

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def ort():
    pytest.importorskip("onnx", reason='onnx is not installed (pip install "cdl[onnx]")')
    return pytest.importorskip("onnxruntime", reason="onnxruntime is not installed "
                                                     "(pip install onnxruntime)")


def run(ort, path, x):
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": x})
    return y


def randomize_batchnorm(model, rng):
    """Non-trivial gamma, beta and running statistics in every BatchNorm of model."""
    for _, layer in walk(model.layers):
        if isinstance(layer, L.BatchNorm):
            D = layer.num_features
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, D)
            layer.params["beta"][...] = rng.normal(0, 0.5, D)
            layer.running_mean = rng.normal(0, 0.5, D)
            layer.running_var = rng.uniform(0.3, 2.0, D)


def check_export(ort, tmp_path, model, input_shape, rng, x=None, batches=(1, 3)):
    """Export, then run the same file on batches of each size; compare to model.predict."""
    path = tmp_path / "model.onnx"
    assert cdl.export_onnx(model, path, input_shape) == path
    for n in batches:
        xb = rng.standard_normal((n, *input_shape)).astype(np.float32) if x is None else x[:n]
        y = run(ort, path, xb)
        expected = model.predict(xb)
        assert y.dtype == np.float32
        assert y.shape == expected.shape
        np.testing.assert_allclose(y, expected, **TOL)
    return path


def conv(cin, cout, k, rng, **kw):
    layer = L.Conv2D(cin, cout, k, rng=rng, **kw)
    if layer.bias:
        layer.params["b"][...] = rng.normal(0, 0.5, cout)
    return layer


def affine(din, dout, rng, **kw):
    layer = L.Affine(din, dout, rng=rng, **kw)
    if layer.bias:
        layer.params["b"][...] = rng.normal(0, 0.5, dout)
    return layer


# name -> builder(rng) returning (layers, per-sample input shape)
CASES = {
    "conv_stride_pad": lambda r: ([conv(2, 3, 3, r, stride=2, pad=1)], (2, 7, 6)),
    "conv_rect_nobias": lambda r: ([conv(2, 4, (3, 2), r, stride=(1, 2), pad=(1, 0),
                                         bias=False)], (2, 5, 7)),
    "affine_2d": lambda r: ([affine(5, 4, r), L.ReLU(), affine(4, 3, r, bias=False)], (5,)),
    "affine_flattens_4d": lambda r: ([affine(2 * 3 * 4, 3, r)], (2, 3, 4)),
    "flatten": lambda r: ([conv(1, 2, 3, r), L.Flatten(), affine(2 * 3 * 3, 4, r)], (1, 5, 5)),
    "flatten_2d": lambda r: ([L.Flatten(), affine(6, 2, r)], (6,)),
    "maxpool_pad_stride": lambda r: ([L.MaxPool2D(3, stride=2, pad=1)], (2, 7, 6)),
    "maxpool_rect": lambda r: ([L.MaxPool2D((2, 3), stride=(1, 2), pad=(1, 1))], (2, 5, 6)),
    "avgpool_pad_stride": lambda r: ([L.AvgPool2D(3, stride=2, pad=1)], (2, 7, 6)),
    "avgpool": lambda r: ([L.AvgPool2D(2)], (3, 4, 6)),
    "global_avg_pool": lambda r: ([conv(2, 3, 3, r, pad=1), L.GlobalAvgPool2D(),
                                   affine(3, 2, r)], (2, 5, 4)),
    "batchnorm_4d": lambda r: ([L.BatchNorm(3, eps=1e-3)], (3, 4, 5)),
    "batchnorm_2d": lambda r: ([affine(6, 4, r), L.BatchNorm(4)], (6,)),
    "relu": lambda r: ([L.ReLU()], (3, 4, 4)),
    "leaky_relu": lambda r: ([L.LeakyReLU(0.2)], (3, 4, 4)),
    "sigmoid": lambda r: ([L.Sigmoid()], (7,)),
    "tanh": lambda r: ([L.Tanh()], (2, 3, 3)),
    "step": lambda r: ([L.Step()], (2, 3, 3)),
    "softmax_2d": lambda r: ([affine(6, 5, r), L.Softmax()], (6,)),
    "softmax_4d_last_axis": lambda r: ([L.Softmax()], (2, 3, 4)),
    "dropout_noise_identity": lambda r: ([affine(6, 5, r), L.Dropout(0.5), L.ReLU(),
                                          L.GaussianNoise(0.3), affine(5, 2, r)], (6,)),
    "identity_only": lambda r: ([L.Dropout(0.3)], (4,)),
    "dropconnect": lambda r: ([L.DropConnect(conv(2, 3, 3, r, pad=1), 0.5), L.ReLU(),
                               L.DropConnect(affine(3 * 4 * 4, 2, r), 0.3)], (2, 4, 4)),
    "chain": lambda r: ([L.Chain(conv(1, 2, 3, r), L.Tanh()), L.Flatten()], (1, 4, 4)),
    "residual_identity": lambda r: ([
        L.Residual(conv(3, 3, 3, r, pad=1, bias=False), L.BatchNorm(3), L.ReLU(),
                   conv(3, 3, 3, r, pad=1, bias=False), L.BatchNorm(3)),
        L.ReLU()], (3, 5, 5)),
    "residual_projection": lambda r: ([
        L.Residual(conv(2, 4, 3, r, stride=2, pad=1), L.BatchNorm(4), L.ReLU(),
                   shortcut=[conv(2, 4, 1, r, stride=2, bias=False), L.BatchNorm(4)]),
        L.ReLU()], (2, 6, 6)),
    "residual_2d_layer_shortcut": lambda r: ([
        L.Residual(affine(4, 4, r), L.Tanh(), shortcut=affine(4, 4, r))], (4,)),
    "concat_inception": lambda r: ([
        L.Concat(conv(3, 2, 1, r),
                 [conv(3, 2, 1, r), L.ReLU(), conv(2, 3, 3, r, pad=1)],
                 [L.MaxPool2D(3, stride=1, pad=1), conv(3, 1, 1, r)]),
        L.ReLU(), L.GlobalAvgPool2D()], (3, 5, 5)),
    "concat_2d": lambda r: ([L.Concat(affine(4, 2, r), [affine(4, 3, r), L.Sigmoid()])], (4,)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_predict(ort, tmp_path, rng, case):
    layers, input_shape = CASES[case](rng)
    model = Sequential(layers, loss=L.SoftmaxCrossEntropy())
    randomize_batchnorm(model, rng)
    check_export(ort, tmp_path, model, input_shape, rng)


def test_maxpool_padding_never_wins(ort, tmp_path, rng):
    """All-negative input: a zero-padded max would show up at the borders."""
    model = Sequential([L.MaxPool2D(3, stride=2, pad=1)])
    x = (-1.0 - rng.random((3, 2, 5, 5))).astype(np.float32)
    check_export(ort, tmp_path, model, (2, 5, 5), rng, x=x)


def test_step_is_zero_at_zero(ort, tmp_path, rng):
    x = np.array([[-1.0, 0.0, 2.0, -0.0, 1e-30]], dtype=np.float32).repeat(3, axis=0)
    path = check_export(ort, tmp_path, Sequential([L.Step()]), (5,), rng, x=x)
    np.testing.assert_array_equal(run(ort, path, x[:1]), [[0, 0, 1, 0, 1]])


def test_every_exportable_layer_has_a_case(rng):
    """Each layer type the exporter maps appears in some model of CASES."""
    from cdl.onnx import _CONVERTERS
    seen = set()
    for build in CASES.values():
        seen.update(type(layer) for _, layer in walk(build(rng)[0]))
        seen.update(type(layer.layer) for _, layer in walk(build(rng)[0])
                    if isinstance(layer, L.DropConnect))
    assert {cls for cls, _ in _CONVERTERS} <= seen


@pytest.mark.parametrize("builder", [models.SimpleConvNet, models.DeepConvNet, models.ResNet])
def test_builtin_models(ort, tmp_path, rng, builder):
    model = builder(rng=0)
    randomize_batchnorm(model, rng)
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    check_export(ort, tmp_path, model, (1, 28, 28), rng, x=x)


def test_file_contents(ort, tmp_path, rng):
    """Opset 17, IR 8, a dynamic batch axis, and initializers under cdl's flat names."""
    import onnx
    model = models.ResNet(rng=0)
    path = tmp_path / "resnet.onnx"
    cdl.export_onnx(model, path, (1, 28, 28))
    proto = onnx.load(os.fspath(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp)) == ("input", ["N", 1, 28, 28])
    assert (out.name, dims(out)) == ("output", ["N", 10])
    names = {t.name for t in proto.graph.initializer}
    state = {k.split("/", 1)[1] for k in model.state()}
    assert names == state


def test_trained_model_and_training_state_untouched(ort, tmp_path, rng):
    """After some training steps (moved running statistics), export still matches, and
    exporting changes nothing in the model."""
    model = models.ResNet(channels=(4, 8), rng=0)
    x = rng.random((4, 1, 12, 12), dtype=np.float32)
    t = rng.integers(0, 10, 4)
    opt = cdl.optim.SGD(lr=0.1)
    for _ in range(3):
        model.loss(x, t)
        model.backward()
        opt.update(model.params, model.grads)
    before = {k: v.copy() for k, v in model.state().items()}
    check_export(ort, tmp_path, model, (1, 12, 12), rng, x=x)
    for k, v in model.state().items():
        np.testing.assert_array_equal(v, before[k])


def test_model_on_the_gpu(ort, tmp_path, rng):
    """Weights on the device (or the CUDA simulator) are copied to the host for the file."""
    if not hasattr(Sequential, "to_device") or not cdl.cuda.is_available():
        pytest.skip("no model.to_device() or no CUDA device (nor the simulator)")
    model = Sequential([affine(4, 3, rng), L.BatchNorm(3), L.ReLU()])
    randomize_batchnorm(model, rng)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    expected = model.predict(x)
    model.to_device()
    path = tmp_path / "m.onnx"
    cdl.export_onnx(model, path, (4,))
    np.testing.assert_allclose(run(ort, path, x), expected, **TOL)


@pytest.mark.parametrize("bad, where", [
    (lambda r: [L.BinaryAffine(4, 3, rng=r)], r"layer 0 \(BinaryAffine\)"),
    (lambda r: [L.Affine(4, 4, rng=r), L.Binarize()], r"layer 1 \(Binarize\)"),
    (lambda r: [L.Residual(L.BinaryAffine(4, 4, rng=r))], r"layer 0\.0 \(BinaryAffine\)"),
])
def test_binary_layers_refused(ort, tmp_path, rng, bad, where):
    with pytest.raises(ValueError, match=where + r" is not supported: binary layers"):
        cdl.export_onnx(Sequential(bad(rng)), tmp_path / "m.onnx", (4,))
    assert not os.listdir(tmp_path)


def test_binary_conv_refused(ort, tmp_path, rng):
    model = Sequential([L.BinaryConv2D(1, 2, 3, rng=rng)])
    with pytest.raises(ValueError, match=r"BinaryConv2D\) is not supported"):
        cdl.export_onnx(model, tmp_path / "m.onnx", (1, 5, 5))


class _Doubler(Layer):  # leading underscore: not registered for cdl.load
    def forward(self, x, train=True):
        return 2 * x

    def backward(self, dout):
        return 2 * dout


def test_user_layer_refused(ort, tmp_path):
    with pytest.raises(ValueError, match=r"layer 1 \(_Doubler\) is not supported: no ONNX "
                                         r"mapping.*Supported layers: Affine"):
        cdl.export_onnx(Sequential([L.ReLU(), _Doubler()]), tmp_path / "m.onnx", (3,))


def test_not_a_sequential_refused(ort, tmp_path):
    with pytest.raises(ValueError, match="expected a cdl Sequential, got ReLU"):
        cdl.export_onnx(L.ReLU(), tmp_path / "m.onnx", (3,))


def test_float64_refused_float32_copy_exports(ort, tmp_path, rng):
    model = Sequential([L.Conv2D(1, 2, 3, rng=rng), L.Flatten(), L.Affine(8, 2, rng=rng)])
    model.astype(np.float64)
    with pytest.raises(ValueError, match=r"float64.*copy\.deepcopy\(model\)\.astype"):
        cdl.export_onnx(model, tmp_path / "m.onnx", (1, 4, 4))
    model32 = copy.deepcopy(model).astype(np.float32)
    check_export(ort, tmp_path, model32, (1, 4, 4), rng)
    model.layers[2].astype(np.float32)
    with pytest.raises(ValueError, match="mix dtypes"):
        cdl.export_onnx(model, tmp_path / "m.onnx", (1, 4, 4))


@pytest.mark.parametrize("layers, input_shape, match", [
    ([L.Conv2D(3, 2, 3)], (1, 5, 5), r"layer 0 \(Conv2D\).*\(1, 5, 5\).*1 channels, expected 3"),
    ([L.Conv2D(1, 2, 3)], (4,), r"layer 0 \(Conv2D\).*expected \(C, H, W\)"),
    ([L.Conv2D(1, 2, 5)], (1, 3, 3), r"layer 0 \(Conv2D\).*larger than the padded input"),
    ([L.Affine(5, 2)], (2, 3), r"layer 0 \(Affine\).*6 features per sample, expected 5"),
    ([L.MaxPool2D(2)], (4,), r"layer 0 \(MaxPool2D\).*expected \(C, H, W\)"),
    ([L.BatchNorm(3)], (4, 2, 2), r"layer 0 \(BatchNorm\).*expected \(3,\) or \(3, H, W\)"),
    ([L.Residual(L.Affine(4, 3))], (4,), r"layer 0 \(Residual\).*main path gives \(3,\) but "
                                         r"the shortcut gives \(4,\)"),
    ([L.Concat(L.Conv2D(1, 1, 3), L.Conv2D(1, 1, 1))], (1, 4, 4), r"layer 0 \(Concat\).*differ"),
])
def test_model_not_taking_input_shape(ort, tmp_path, layers, input_shape, match):
    with pytest.raises(ValueError, match=match):
        cdl.export_onnx(Sequential(layers), tmp_path / "m.onnx", input_shape)


@pytest.mark.parametrize("input_shape", [(0, 3), (2.0,), "abc", (), (1, 2, 3, 4, 5, 6, 7), None])
def test_bad_input_shape(ort, tmp_path, input_shape):
    with pytest.raises(ValueError, match="input_shape"):
        cdl.export_onnx(Sequential([L.ReLU()]), tmp_path / "m.onnx", input_shape)


def test_int_input_shape_and_replacing_a_file(ort, tmp_path, rng):
    """input_shape=D means (D,); an existing file is replaced whole, and a refused export
    leaves it as it was."""
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model = Sequential([L.Affine(3, 2, rng=rng)])
    cdl.export_onnx(model, path, 3)
    good = path.read_bytes()
    assert good != b"old"
    with pytest.raises(ValueError):
        cdl.export_onnx(Sequential([L.BinaryAffine(3, 2)]), path, 3)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["m.onnx"]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(run(ort, path, x), model.predict(x), **TOL)


def test_missing_onnx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "cdl\[onnx\]"'):
        cdl.export_onnx(Sequential([L.ReLU()]), tmp_path / "m.onnx", (3,))
    assert not os.listdir(tmp_path)


def test_import_cdl_does_not_import_onnx():
    code = ("import sys, cdl; f = cdl.export_onnx; "
            "assert 'onnx' not in sys.modules and 'cdl.onnx' in sys.modules; "
            "assert 'export_onnx' in cdl.__all__")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
