"""Export a trained float model to ONNX, to run it outside cdl (onnxruntime, TensorRT, ...).

    cdl.export_onnx(model, "net.onnx", input_shape=(1, 28, 28))

The file computes what ``model.predict(x)`` returns (the loss layer is not
part of it: a classifier gives scores, not probabilities), for a batch of
any size: the input "input" has shape (N, *input_shape) with N dynamic, the
output "output" (N, ...). Opset 17 (IR version 8), which onnxruntime has
run since 1.12, so that older runtimes load the file too.

Each layer maps to the standard operators of its inference mode:

    Conv2D -> Conv             Affine -> [Flatten] Gemm (y = x W + b, W (in, out): transB=0)
    MaxPool2D -> MaxPool       AvgPool2D -> AveragePool(count_include_pad=1)
    GlobalAvgPool2D -> GlobalAveragePool, Flatten     Flatten -> Flatten(axis=1)
    BatchNorm -> BatchNormalization (running statistics, on (N, D) or (N, C, H, W))
    ReLU, LeakyReLU, Sigmoid, Tanh -> Relu, LeakyRelu, Sigmoid, Tanh
    Softmax -> Softmax(axis=-1)   Step -> Greater(x, 0), Cast
    Residual -> main path, shortcut, Add      Concat -> branches, Concat(axis=1)
    Chain -> its layers           DropConnect -> the layer it wraps
    Dropout, GaussianNoise -> nothing (the identity at inference)

Binary layers (Binarize, BinaryAffine, BinaryConv2D) and layer types of
users are refused with a ValueError naming the layer. Initializers keep
cdl's flat parameter names ("0.W", "3.1.gamma", "3.1.running_mean").

dtype: a float32 model exports float32; a float64 model (cdl's dtype for
gradient checks) is refused, because onnxruntime, the usual way to run an
ONNX file, has no double kernels for Conv and average pooling, so such a file would
pass the checker and then fail to load where users deploy it. Export a
float32 copy instead: ``copy.deepcopy(model).astype(np.float32)``.

The ``onnx`` package is an optional extra (``pip install "cdl[onnx]"``),
imported only when ``export_onnx`` runs. The graph is checked with
``onnx.checker.check_model`` (full check, which includes shape inference)
before it is written, atomically as ``Sequential.save`` writes.
"""
import math

import numpy as np

from cdl._atomic import atomic_write, check_save_path
from cdl._checks import conv_output_hw, positive_int
from cdl.cuda import to_host
from cdl.layers import activation as _act
from cdl.layers import binary as _binary
from cdl.layers import blocks as _blocks
from cdl.layers import conv as _conv
from cdl.layers import dense as _dense
from cdl.layers import dropout as _dropout
from cdl.layers import norm as _norm
from cdl.layers import pool as _pool
from cdl.layers.base import Layer

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17: runtimes older than the installed onnx load it

_INSTALL = 'pip install "cdl[onnx]" (or pip install onnx)'


def _import_onnx():
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as e:
        raise ImportError(f"cdl.export_onnx needs the onnx package, an optional extra of "
                          f"cdl: {_INSTALL}") from e
    return onnx


def export_onnx(model, path, input_shape=None):
    """Write model (a float32 Sequential) to path as an ONNX file; returns path.

    input_shape is the shape of one sample, (C, H, W) for images or (D,);
    the batch axis is dynamic. It defaults to the model's ``input_shape``
    where the model records one. A model on the GPU exports as well (its
    weights are copied to the host). Raises ValueError for a layer without an
    ONNX mapping (binary layers, user layers), for a model that does not
    accept input_shape, and for float64 models (see the module docstring);
    ImportError when the onnx package is missing.
    """
    from cdl.model import Sequential  # cdl.model imports the layers; so does this module
    if not isinstance(model, Sequential):
        raise ValueError(f"export_onnx: expected a cdl Sequential, got {type(model).__name__}")
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError("export_onnx: input_shape is required (the shape of one sample, "
                             "(C, H, W) or (D,)): the model does not record one")
    shape = _check_input_shape(input_shape)
    _check_float32(model)
    try:  # the arguments first, with or without onnx; the file last, atomically
        check_save_path(path)
    except ValueError as e:
        raise ValueError(f"export_onnx: {e}") from None
    onnx = _import_onnx()
    helper = onnx.helper
    g = _Graph(onnx)
    out, out_shape = g.layers(model.layers, "", "input", shape)
    if out == "input":  # a model of identities only: an output must be some node's output
        out = g.node("Identity", [out], "Identity")
    g.rename(out, "output")
    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [helper.make_tensor_value_info("input", g.elem, ["N", *shape])],
        [helper.make_tensor_value_info("output", g.elem, ["N", *out_shape])],
        initializer=g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="cdl",
                              producer_version=_version(),
                              doc_string="Exported by cdl.export_onnx: model.predict(x)")
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data), who="export_onnx")
    return path


def _version():
    import cdl
    return cdl.__version__


def _check_input_shape(input_shape):
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not 1 <= len(input_shape) <= 6:
        raise ValueError(f"export_onnx: input_shape must be the shape of one sample, (C, H, W) "
                         f"or (D,), got {input_shape!r}")
    return tuple(positive_int("export_onnx", "input_shape", d) for d in input_shape)


def _check_float32(model):
    """ValueError unless every parameter and buffer is float32 (a model without any is)."""
    from cdl.model import flat
    dtypes = {np.dtype(v.dtype) for store in ("params", "buffers")
              for v in flat(model.layers, store).values()}
    if dtypes <= {np.dtype(np.float32)}:
        return
    if dtypes == {np.dtype(np.float64)}:
        raise ValueError("export_onnx: the model is float64, and onnxruntime has no float64 "
                         "Conv or average pooling kernels; export a float32 copy: "
                         "copy.deepcopy(model).astype(np.float32)")
    raise ValueError(f"export_onnx: the model's parameters mix dtypes "
                     f"{sorted(str(d) for d in dtypes)}; export a float32 copy: "
                     f"copy.deepcopy(model).astype(np.float32)")


def _shape_error(where, layer, shape, why):
    return ValueError(f"export_onnx: layer {where} ({type(layer).__name__}) cannot take a "
                      f"sample of shape {shape}: {why}")


class _Graph:
    """Nodes and initializers under construction; each converter returns (output, shape).

    Shapes are per sample (the batch axis left out): the converters check
    them as the layers' forward would, so that a model which cannot take
    input_shape fails here with the layer's name, not in the ONNX checker.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, onnx):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.elem = onnx.TensorProto.FLOAT
        self.nodes, self.initializers = [], []
        self._names = {"input", "output"}

    def _unique(self, name):
        base, i = name, 1
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def const(self, name, array):
        name = self._unique(name)
        array = np.ascontiguousarray(to_host(array), dtype=self.dtype)  # models on the GPU too
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, name, **attrs):
        """Add op(inputs) named name; returns the name of its (single) output."""
        name = self._unique(name)
        self.nodes.append(self.helper.make_node(op, list(inputs), [name], name=name, **attrs))
        return name

    def rename(self, old, new):
        """Let the node that writes old write new instead (for the graph's output)."""
        for n in self.nodes:
            if old in n.output:
                n.output[list(n.output).index(old)] = new
            for i, x in enumerate(n.input):
                if x == old:
                    n.input[i] = new

    def layers(self, layers, prefix, x, shape):
        """Export layers in order; prefix is the flat-name prefix of their indices."""
        for i, layer in enumerate(layers):
            x, shape = self.layer(layer, f"{prefix}{i}", x, shape)
        return x, shape

    def layer(self, layer, where, x, shape):
        for cls, convert in _CONVERTERS:
            if type(layer) is cls:
                return convert(self, layer, where, x, shape)
        if isinstance(layer, (_binary.Binarize, _binary.BinaryAffine, _binary.BinaryConv2D)):
            why = "binary layers have no ONNX mapping (their +-1 arithmetic is not a standard op)"
        elif isinstance(layer, Layer):
            why = "no ONNX mapping for this layer type"
        else:
            why = "not a cdl Layer"
        names = ", ".join(sorted(cls.__name__ for cls, _ in _CONVERTERS))
        raise ValueError(f"export_onnx: layer {where} ({type(layer).__name__}) is not "
                         f"supported: {why}. Supported layers: {names}")


def _params(g, layer, where):
    """Initializer names of the layer's params and buffers, keyed like the layer's dicts."""
    return {k: g.const(f"{where}.{k}", v)
            for store in (layer.params, layer.buffers) for k, v in store.items()}


def _conv2d(g, layer, where, x, shape):
    if len(shape) != 3:
        raise _shape_error(where, layer, shape, "expected (C, H, W)")
    try:
        out = _conv.conv_output_shape(layer, (1, *shape))[1:]
    except ValueError as e:
        raise _shape_error(where, layer, shape, e) from None
    p = _params(g, layer, where)
    inputs = [x, p["W"]] + ([p["b"]] if layer.bias else [])
    y = g.node("Conv", inputs, f"{where}.Conv", kernel_shape=list(layer.kernel_size),
               strides=list(layer.stride), pads=[*layer.pad, *layer.pad])
    return y, out


def _flatten(g, x, shape, where):
    if len(shape) == 1:
        return x, shape
    return g.node("Flatten", [x], f"{where}.Flatten", axis=1), (math.prod(shape),)


def _affine(g, layer, where, x, shape):
    if math.prod(shape) != layer.in_features:
        raise _shape_error(where, layer, shape, f"{math.prod(shape)} features per sample, "
                                                f"expected {layer.in_features}")
    x, _ = _flatten(g, x, shape, where)
    p = _params(g, layer, where)
    if layer.bias:
        y = g.node("Gemm", [x, p["W"], p["b"]], f"{where}.Gemm")
    else:
        y = g.node("MatMul", [x, p["W"]], f"{where}.MatMul")
    return y, (layer.out_features,)


def _flatten_layer(g, layer, where, x, shape):
    if len(shape) == 1:  # (N, D) is flat already: cdl's Flatten is the identity there
        return x, shape
    return _flatten(g, x, shape, where)


def _window_pool(op, **extra):
    def convert(g, layer, where, x, shape):
        if len(shape) != 3:
            raise _shape_error(where, layer, shape, "expected (C, H, W)")
        try:
            oh, ow = conv_output_hw(layer.name, shape[1:], layer.pool_size, layer.stride,
                                    layer.pad)
        except ValueError as e:
            raise _shape_error(where, layer, shape, e) from None
        # ONNX pads MaxPool with -inf and, with count_include_pad=1, AveragePool with zeros
        # counted in the divisor: cdl's semantics for both.
        y = g.node(op, [x], f"{where}.{op}", kernel_shape=list(layer.pool_size),
                   strides=list(layer.stride), pads=[*layer.pad, *layer.pad], **extra)
        return y, (shape[0], oh, ow)
    return convert


def _global_avg_pool(g, layer, where, x, shape):
    if len(shape) != 3:
        raise _shape_error(where, layer, shape, "expected (C, H, W)")
    y = g.node("GlobalAveragePool", [x], f"{where}.GlobalAveragePool")  # (N, C, 1, 1)
    return g.node("Flatten", [y], f"{where}.Flatten", axis=1), (shape[0],)  # cdl gives (N, C)


def _batchnorm(g, layer, where, x, shape):
    if len(shape) not in (1, 3) or shape[0] != layer.num_features:
        raise _shape_error(where, layer, shape, f"expected ({layer.num_features},) or "
                                                f"({layer.num_features}, H, W)")
    p = _params(g, layer, where)
    y = g.node("BatchNormalization",
               [x, p["gamma"], p["beta"], p["running_mean"], p["running_var"]],
               f"{where}.BatchNormalization", epsilon=layer.eps)
    return y, shape


def _elementwise(op, **attrs):
    def convert(g, layer, where, x, shape):
        values = {k: v(layer) for k, v in attrs.items()}
        return g.node(op, [x], f"{where}.{op}", **values), shape
    return convert


def _step(g, layer, where, x, shape):
    zero = g.const(f"{where}.zero", np.zeros((), dtype=g.dtype))
    positive = g.node("Greater", [x, zero], f"{where}.Greater")
    return g.node("Cast", [positive], f"{where}.Cast", to=g.elem), shape


def _identity(g, layer, where, x, shape):
    return x, shape


def _drop_connect(g, layer, where, x, shape):
    # The wrapper shares the wrapped layer's params: flat names stay "<where>.W".
    return g.layer(layer.layer, where, x, shape)


def _chain(g, layer, where, x, shape):
    return g.layers(layer.children(), f"{where}.", x, shape)


def _residual(g, layer, where, x, shape):
    # Flat names as cdl.model.walk gives them: the path's layers, then the shortcut.
    path = layer.path.children()
    fx, f_shape = g.layers(path, f"{where}.", x, shape)
    if layer.shortcut is None:
        sx, s_shape = x, shape
    else:
        sx, s_shape = g.layer(layer.shortcut, f"{where}.{len(path)}", x, shape)
    if f_shape != s_shape:
        raise _shape_error(where, layer, shape, f"the main path gives {f_shape} but the "
                                                     f"shortcut gives {s_shape}")
    return g.node("Add", [fx, sx], f"{where}.Add"), f_shape


def _concat(g, layer, where, x, shape):
    outs = [g.layer(b, f"{where}.{i}", x, shape) for i, b in enumerate(layer.children())]
    rest = {s[1:] for _, s in outs}
    if len(rest) != 1 or any(len(s) < 1 for _, s in outs):
        raise _shape_error(where, layer, shape, f"branch outputs {[s for _, s in outs]} "
                                                     f"differ in more than the channel axis")
    y = g.node("Concat", [o for o, _ in outs], f"{where}.Concat", axis=1)
    return y, (sum(s[0] for _, s in outs), *rest.pop())


_CONVERTERS = [
    (_conv.Conv2D, _conv2d),
    (_dense.Affine, _affine),
    (_dense.Flatten, _flatten_layer),
    (_pool.MaxPool2D, _window_pool("MaxPool")),
    (_pool.AvgPool2D, _window_pool("AveragePool", count_include_pad=1)),
    (_pool.GlobalAvgPool2D, _global_avg_pool),
    (_norm.BatchNorm, _batchnorm),
    (_act.ReLU, _elementwise("Relu")),
    (_act.LeakyReLU, _elementwise("LeakyRelu", alpha=lambda layer: layer.alpha)),
    (_act.Sigmoid, _elementwise("Sigmoid")),
    (_act.Tanh, _elementwise("Tanh")),
    (_act.Softmax, _elementwise("Softmax", axis=lambda layer: -1)),
    (_act.Step, _step),
    (_dropout.Dropout, _identity),
    (_dropout.GaussianNoise, _identity),
    (_dropout.DropConnect, _drop_connect),
    (_blocks.Chain, _chain),
    (_blocks.Residual, _residual),
    (_blocks.Concat, _concat),
]
