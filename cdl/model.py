"""Sequential models, flat parameter names, and the summary table.

Flat names are "index.name" ("0.W", "3.gamma"); a container layer's children
add their own index ("2.0.W" is the W of the first layer inside layer 2).

``save`` and ``load`` (safe model files: no pickle, checked before anything
is allocated) are ``cdl.model_file``'s, re-exported here with the rest of
that module's public names; predict_proba and accuracy are
``cdl.predictor``'s.
"""
import contextlib

import numpy as np

from cdl import _flatgrad
from cdl._checks import is_device_array, positive_int
from cdl.layers.base import Layer
from cdl.layers.loss import Loss
from cdl.model_file import FORMAT, VERSION, architecture, build_layer, layer_spec, load, save
from cdl.predictor import Predictor, in_batches

__all__ = ["Sequential", "walk", "flat", "load", "save", "architecture", "layer_spec",
           "build_layer", "FORMAT", "VERSION"]


def walk(layers, prefix="", trainable_only=False):
    """Yield (flat prefix, layer) for layers and, depth first, their children; with
    trainable_only, frozen layers (and their children) are skipped."""
    for i, layer in enumerate(layers):
        if trainable_only and not layer.trainable:
            continue
        p = f"{prefix}{i}."
        yield p, layer
        yield from walk(layer.children(), p, trainable_only)


def flat(layers, store, trainable_only=False):
    """{flat name: array} of the layers' params, grads or buffers (store names which),
    of the trainable layers only with trainable_only."""
    return {p + k: v for p, layer in walk(layers, trainable_only=trainable_only)
            for k, v in getattr(layer, store).items()}


class Sequential(Predictor):
    """A stack of layers and a loss: the book's MultiLayerNet, for any layers.

        net = Sequential([Conv2D(1, 16, 3, pad=1), ReLU(), MaxPool2D(2),
                          Flatten(), Affine(16*4*4, 10)], loss=SoftmaxCrossEntropy())
        loss = net.loss(x, t); net.backward(); opt.update(net.params, net.grads)

    ``params`` and ``grads`` are flat dicts of the trainable layers (frozen
    layers, ``trainable = False``, are left out so no optimizer moves them);
    ``state()`` has every parameter and buffer, for saving.

    ``weight_decay`` (e.g. ``cdl.optim.WeightDecay(l2=1e-4)``, anything with
    ``penalty(layers)`` and ``add_grads(layers)``) adds its penalty to the
    loss that ``loss`` reports and its gradient to ``grads`` in ``backward``.
    It is training configuration: ``save`` does not store it.

    ``input_shape`` (C, H, W), optional, records the per-sample shape the model
    was built for; ``summary()`` uses it (the builders of ``cdl.models`` set it).

    Gradients live in one flat buffer (``grad_buffer``, ``cdl._flatgrad``): after
    ``backward`` every ``grads`` array is a view of it, so one collective covers them
    all. ``grad_hook``, when set (``cdl.distributed`` does), is called as
    ``hook(layout, i)`` once top-level layer i's grads are in the buffer (i from the
    last layer down) and ``hook(layout, None)`` at the end, before weight decay.
    """

    grad_hook = None
    _grad_buffer = None  # the cdl._flatgrad.GradBuffer, built at the first backward

    def __init__(self, layers, loss=None, weight_decay=None, input_shape=None):
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: item {i} is {type(layer).__name__}, not a "
                                 f"cdl Layer")
        if loss is not None and not isinstance(loss, Loss):
            raise ValueError(f"Sequential: loss must be a cdl Loss, got {type(loss).__name__}")
        if weight_decay is not None and not (hasattr(weight_decay, "penalty")
                                             and hasattr(weight_decay, "add_grads")):
            raise ValueError(f"Sequential: weight_decay must have penalty(layers) and "
                             f"add_grads(layers), got {type(weight_decay).__name__}")
        self.loss_layer = loss
        self.weight_decay = weight_decay
        self.input_shape = None if input_shape is None else _shape("Sequential", input_shape)

    # -- computing ---------------------------------------------------------
    def forward(self, x, train=False):
        """Run every layer; train=True caches for backward and enables dropout etc."""
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def predict(self, x, batch_size=None):
        """Inference-mode output, optionally in chunks of batch_size samples.

        On a model moved to the GPU (``to_device``), host input is moved there
        chunk by chunk and the output comes back as a NumPy array; device input
        gives device output. A single sample of the model's ``input_shape``
        (e.g. (C, H, W)) gives the output for that sample, without a batch axis.
        ``predict_proba`` and ``accuracy`` build on it (``cdl.predictor``).
        """
        if self.input_shape is not None and tuple(x.shape) == self.input_shape:
            return self.predict(x.reshape(1, *x.shape), batch_size)[0]  # one sample
        if is_device_array(x) or not self._on_device():
            if is_device_array(x) and batch_size is not None and len(x) > batch_size:
                raise ValueError("Sequential.predict: batch_size with device input; pass the "
                                 "batch you want computed, or host input")
            return in_batches(lambda c: self.forward(c, train=False), x, batch_size)
        from cdl import cuda
        return in_batches(lambda c: cuda.to_host(self.forward(cuda.to_device(c), train=False)),
                          x, batch_size)

    @property
    def outputs(self):
        """What predict returns (``cdl.predictor.Predictor``), from the loss trained with."""
        kind = type(self.loss_layer).__name__
        return {"SigmoidCrossEntropy": "sigmoid", "MeanSquaredError": "regression"}.get(
            kind, "softmax")

    def _on_device(self):
        """True when the model's parameters live on the GPU."""
        return any(is_device_array(v) for v in self.state().values())

    def to_device(self):
        """Move every parameter, gradient and buffer to the GPU (``cdl.cuda``); returns self.

        Layers then run their CUDA kernels on device input; create (or move)
        the optimizer after this, so its state is allocated on the device too.
        """
        for _, layer in walk(self.layers):
            layer.to_device()
        return self

    def to_host(self):
        """Move every parameter, gradient and buffer back to NumPy arrays; returns self."""
        for _, layer in walk(self.layers):
            layer.to_host()
        return self

    def loss(self, x, t):
        """Forward in training mode, then the loss against targets t, plus the weight
        decay penalty if any (a float)."""
        if self.loss_layer is None:
            raise RuntimeError("Sequential.loss: the model has no loss; pass loss=... ")
        value = self.loss_layer.forward(self.forward(x, train=True), t)
        if self.weight_decay is not None:
            value += self.weight_decay.penalty(self.layers)
        return value

    def backward(self, dout=1.0, input_grad=True):
        """Fill every layer's grads from the last loss; returns dL/dx, or None with
        input_grad=False, which spares the first layer computing it (Trainer does so)."""
        if self.loss_layer is None:
            raise RuntimeError("Sequential.backward: the model has no loss")
        d = self.loss_layer.backward(dout)
        buf, hook = _flatgrad.layout(self), self.grad_hook
        for i in range(len(self.layers) - 1, -1, -1):
            if i == 0 and not input_grad:
                d = self.layers[0].backward_params(d)
            else:
                d = self.layers[i].backward(d)
            buf.gather(i)  # layer i's grads into the flat buffer (cdl._flatgrad)
            if hook is not None:
                hook(buf, i)
        if hook is not None:
            hook(buf, None)  # e.g. wait for the gradients' allreduce before weight decay
        if self.weight_decay is not None:
            self.weight_decay.add_grads(self.layers)
        return d

    # -- parameters ----------------------------------------------------------
    @property
    def params(self):
        """{flat name ("0.W", "3.gamma"): array} of the trainable layers' parameters; the
        arrays are the layers' own, so an optimizer updates them in place."""
        return flat(self.layers, "params", trainable_only=True)

    @property
    def grads(self):
        """{flat name: array} of the trainable layers' gradients, ``params``' keys and
        shapes; ``backward`` fills them."""
        return flat(self.layers, "grads", trainable_only=True)

    @property
    def grad_buffer(self):
        """Every trainable gradient in one contiguous 1-D array, in ``grads`` order (each
        ``grads`` array is a view of it); ValueError for a model of mixed dtypes."""
        buffers = _flatgrad.layout(self).buffers
        if len(buffers) > 1:
            raise ValueError(f"Sequential.grad_buffer: parameters of {len(buffers)} dtypes "
                             f"have one buffer each (cdl._flatgrad.layout(model).buffers)")
        return buffers[0] if buffers else np.zeros(0, np.float32)

    def state(self):
        """{"params/<name>": array, "buffers/<name>": array} of every layer."""
        out = {f"params/{k}": v for k, v in flat(self.layers, "params").items()}
        out.update({f"buffers/{k}": v for k, v in flat(self.layers, "buffers").items()})
        return out

    def load_state(self, state):
        """Copy arrays from state (as ``state()`` returns) into the model, checked."""
        mine = self.state()
        from cdl.layers.norm import BatchNorm  # model.py stays light to import
        variances = {f"buffers/{p}running_var" for p, layer in walk(self.layers)
                     if isinstance(layer, BatchNorm)}
        if set(state) != set(mine):
            missing, extra = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
            raise ValueError(f"load_state: missing {missing[:5]}, unexpected {extra[:5]}")
        for k, dst in mine.items():
            src = np.asarray(state[k])
            if src.shape != dst.shape:
                raise ValueError(f"load_state: {k} has shape {src.shape}, model expects "
                                 f"{dst.shape}")
            if src.dtype.kind != "f":
                raise ValueError(f"load_state: {k} has dtype {src.dtype}, expected float")
            if not np.isfinite(src).all():
                raise ValueError(f"load_state: {k} holds NaN or Inf")
            if k in variances and (src < 0).any():
                raise ValueError(f"load_state: {k} holds negative variances, e.g. "
                                 f"{src[src < 0].flat[0]!r}")
        for k, dst in mine.items():
            dst[...] = state[k]

    @contextlib.contextmanager
    def hold_noise(self):
        """Inside the block, Dropout & co. reuse their last noise draw (model-level gradient checks)."""
        with contextlib.ExitStack() as stack:
            for layer in self.layers:
                stack.enter_context(layer.hold_noise())
            yield self

    def astype(self, dtype):
        """Cast every layer's params, grads and buffers (e.g. to float64 for gradcheck)."""
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def num_params(self):
        """Number of parameter values in every layer, frozen ones included."""
        return int(sum(v.size for v in flat(self.layers, "params").values()))

    def replace_head(self, layers, n=1):
        """Swap the last n layers for ``layers`` (a Layer or a list), in place; returns self.

        For transfer learning: the body keeps its layers and weights, the new
        head comes in the body's dtype and on its device. Freeze the body with
        ``layer.trainable = False`` (BatchNorm then keeps its statistics), or
        give it a smaller rate with the optimizer's ``lr_multipliers``; use a
        new optimizer, as the head's parameters are new (the flat names of its
        parameters may be the old head's)::

            net.replace_head([Affine(128, 5)], n=1)
            for layer in net.layers[:-1]:
                layer.trainable = False
        """
        layers = [layers] if isinstance(layers, Layer) else list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential.replace_head: item {i} is "
                                 f"{type(layer).__name__}, not a cdl Layer")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(self.layers):
            raise ValueError(f"Sequential.replace_head: n must be an int in [0, "
                             f"{len(self.layers)}] (the layers to drop), got {n!r}")
        body = self.layers[:len(self.layers) - n]
        weights = list(flat(body, "params").values())
        if weights:
            for layer in layers:
                layer.astype(weights[0].dtype)
                if is_device_array(weights[0]):
                    for _, inner in walk([layer]):
                        inner.to_device()
        self.layers = body + layers
        return self

    def summary(self, input_shape=None, print_fn=print):
        """Print, and return, a table of the layers: output shape, parameters, activations.

        One row per top-level layer (a container's row totals what is inside it),
        as Keras prints one. Shapes come from an inference forward of one zero
        sample of ``input_shape`` (C, H, W), or of the recorded ``self.input_shape``.
        "Activations" are the bytes per sample of every layer's output, containers'
        insides included (as torchsummary counts them): what a training forward
        keeps for backward, roughly. print_fn=None prints nothing. The forward
        wraps each layer's ``forward`` for its duration: not while another thread
        runs the model.
        """
        text = _summary(self, input_shape if input_shape is not None else self.input_shape)
        if print_fn is not None:
            print_fn(text)
        return text

    def pack(self):
        """Inference-only copy with bit-packed binary layers (``cdl.packed.pack_model``)."""
        from cdl.packed import pack_model  # cdl.packed imports the layers; keep model.py light
        return pack_model(self)

    def half(self):
        """Inference-only copy with float16 weights and activations, computing in float32
        (``cdl.precision.to_float16``); this model is unchanged."""
        from cdl.precision import to_float16  # cdl.precision imports this module
        return to_float16(self)

    def __repr__(self):
        body = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({body}\n  loss={self.loss_layer!r}\n)"

    # -- files -------------------------------------------------------------
    def save(self, path):
        """Write architecture and weights to path (an .npz), atomically (``cdl.model_file``)."""
        save(self, path)


def _shape(who, shape):
    """shape as a tuple of positive ints (a per-sample input shape), or ValueError."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") \
            or not 1 <= len(shape) <= 4:
        raise ValueError(f"{who}: input_shape must be a tuple such as (C, H, W), got {shape!r}")
    return tuple(positive_int(who, "input_shape entry", d) for d in shape)


def _summary(net, input_shape):
    """The table of ``Sequential.summary``."""
    who = f"{type(net).__name__}.summary"
    if input_shape is None:
        raise ValueError(f"{who}: the model records no input shape; pass input_shape=(C, H, W)")
    input_shape = _shape(who, input_shape)
    outputs, originals = {}, []
    for _, layer in walk(net.layers):  # record every output, containers' insides included
        def recording(x, train=True, _layer=layer, _forward=layer.forward):
            y = _forward(x, train=train)
            outputs[id(_layer)] = y
            return y
        originals.append((layer, layer.__dict__.get("forward")))
        layer.forward = recording
    try:
        params = list(flat(net.layers, "params").values())
        dtype = params[0].dtype if params else np.dtype(np.float32)
        x = np.zeros((1, *input_shape), dtype=dtype)
        if any(is_device_array(p) for p in params):
            from cdl import cuda
            x = cuda.to_device(x)
        net.forward(x, train=False)
    finally:
        for layer, own in originals:
            if own is None:
                del layer.forward
            else:
                layer.forward = own

    def activations(layer):
        y, kids = outputs.get(id(layer)), layer.children()
        if y is None or any(outputs.get(id(c)) is y for c in kids):  # a Chain passes one on
            own = 0
        else:
            own = y.nbytes
        return own + sum(activations(c) for c in kids)

    rows = [("#", "Layer", "Output shape", "Params", "Activations")]
    total_act = 0
    for i, layer in enumerate(net.layers):
        act = activations(layer)
        total_act += act
        n = sum(v.size for v in flat([layer], "params").values())
        rows.append((str(i), layer.name, str(outputs[id(layer)].shape[1:]), f"{n:,}",
                     _bytes(act)))
    widths = [max(len(r[j]) for r in rows) for j in range(5)]
    line = lambda r: "  ".join(c.ljust(w) if j < 3 else c.rjust(w)  # noqa: E731
                               for j, (c, w) in enumerate(zip(r, widths))).rstrip()
    rule = "-" * len(line(rows[0]))
    total, trainable = net.num_params(), sum(v.size for v in net.params.values())
    buffers = sum(v.size for v in flat(net.layers, "buffers").values())
    out = [f'{type(net).__name__}: input {input_shape}, {np.dtype(dtype).name}', rule,
           line(rows[0]), rule, *map(line, rows[1:]), rule,
           f"Total params: {total:,}", f"Trainable params: {trainable:,}",
           f"Non-trainable params: {total - trainable:,}"]
    if buffers:
        out.append(f"Buffers (not trained): {buffers:,}")
    out += [f"Parameter memory: {_bytes(total * np.dtype(dtype).itemsize)}",
            f"Activations per sample: {_bytes(total_act)}"]
    return "\n".join(out)


def _bytes(n):
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 1024 ** 2 else f"{n / 1024 ** 2:.1f} MiB"
