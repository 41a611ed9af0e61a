"""Sequential models, flat parameter names, and safe save/load.

Flat names are "index.name" ("0.W", "3.gamma"); a container layer's children
add their own index ("2.0.W" is the W of the first layer inside layer 2).

A saved model is one ``.npz`` file: the architecture as JSON text plus one
array per parameter and buffer. Loading uses ``allow_pickle=False`` and only
rebuilds layer classes registered by cdl from their JSON config, so a model
file is data and never code. Writes go to a temporary file that replaces
the target only once complete: a crash mid-save keeps the old file.
"""
import contextlib
import json
import os
import tempfile

import numpy as np

from cdl.layers.base import Layer, registered_layers
from cdl.layers.loss import Loss

FORMAT = "cdl-model"
VERSION = 1


def walk(layers, prefix="", trainable_only=False):
    """Yield (flat prefix, layer) for layers and, depth first, their children."""
    for i, layer in enumerate(layers):
        if trainable_only and not layer.trainable:
            continue
        p = f"{prefix}{i}."
        yield p, layer
        yield from walk(layer.children(), p, trainable_only)


def flat(layers, store, trainable_only=False):
    """{flat name: array} of the layers' params, grads or buffers (store names which)."""
    return {p + k: v for p, layer in walk(layers, trainable_only=trainable_only)
            for k, v in getattr(layer, store).items()}


class Sequential:
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
    """

    def __init__(self, layers, loss=None, weight_decay=None):
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

    # -- computing ---------------------------------------------------------
    def forward(self, x, train=False):
        """Run every layer; train=True caches for backward and enables dropout etc."""
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def predict(self, x, batch_size=None):
        """Inference-mode output, optionally in chunks of batch_size samples."""
        if batch_size is None or len(x) <= batch_size:
            return self.forward(x, train=False)
        return np.concatenate([self.forward(x[i:i + batch_size], train=False)
                               for i in range(0, len(x), batch_size)])

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
        for i in range(len(self.layers) - 1, -1, -1):
            if i == 0 and not input_grad:
                d = self.layers[0].backward_params(d)
            else:
                d = self.layers[i].backward(d)
        if self.weight_decay is not None:
            self.weight_decay.add_grads(self.layers)
        return d

    def accuracy(self, x, t, batch_size=1000):
        """Fraction of samples whose arg-max prediction equals the label (t labels or one-hot)."""
        y = self.predict(x, batch_size)
        t = np.asarray(t)
        labels = t.argmax(axis=1) if t.ndim == 2 else t
        if len(labels) != len(y):
            raise ValueError(f"Sequential.accuracy: {len(labels)} labels for {len(y)} samples")
        return float((y.argmax(axis=1) == labels).mean())

    # -- parameters ----------------------------------------------------------
    @property
    def params(self):
        return flat(self.layers, "params", trainable_only=True)

    @property
    def grads(self):
        return flat(self.layers, "grads", trainable_only=True)

    def state(self):
        """{"params/<name>": array, "buffers/<name>": array} of every layer."""
        out = {f"params/{k}": v for k, v in flat(self.layers, "params").items()}
        out.update({f"buffers/{k}": v for k, v in flat(self.layers, "buffers").items()})
        return out

    def load_state(self, state):
        """Copy arrays from state (as ``state()`` returns) into the model, checked."""
        mine = self.state()
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
            dst[...] = src

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
        return int(sum(v.size for v in flat(self.layers, "params").values()))

    def pack(self):
        """Inference-only copy with bit-packed binary layers (``cdl.packed.pack_model``)."""
        from cdl.packed import pack_model  # cdl.packed imports the layers; keep model.py light
        return pack_model(self)

    def __repr__(self):
        body = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({body}\n  loss={self.loss_layer!r}\n)"

    # -- files -------------------------------------------------------------
    def save(self, path):
        """Write architecture and weights to path (an .npz), atomically."""
        arch = {"format": FORMAT, "version": VERSION,
                "layers": [layer_spec(layer) for layer in self.layers],
                "loss": None if self.loss_layer is None else
                {"type": type(self.loss_layer).__name__, "config": self.loss_layer.config()}}
        arrays = {"__arch__": np.frombuffer(json.dumps(arch).encode(), dtype=np.uint8)}
        arrays.update(self.state())
        atomic_savez(path, arrays)


def layer_spec(layer):
    """{"type": class name, "config": constructor kwargs} (containers nest specs)."""
    return {"type": type(layer).__name__, "config": layer.config()}


def atomic_savez(path, arrays):
    """np.savez to a temporary file in the same folder, fsync, then rename over path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cdl-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _bad(path, why):
    return ValueError(f"cdl.load: {path} is not a valid cdl model file: {why}")


def build_layer(spec, limit, where="layer"):
    """A layer from its JSON spec; every int in its config must be <= limit.

    The limit (the number of stored weight elements, at least 2**16) keeps a
    forged config from asking a constructor for an absurd allocation before
    the stored shapes are checked.
    """
    classes = registered_layers()
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise ValueError(f"{where}: expected {{'type', 'config'}}, got {spec!r:.80}")
    cls = classes.get(spec["type"]) if isinstance(spec["type"], str) else None
    if cls is None:
        raise ValueError(f"{where}: unknown layer type {spec['type']!r:.40}")
    config = spec["config"]
    if not isinstance(config, dict):
        raise ValueError(f"{where}: config must be an object")
    _check_ints(config, limit, where)
    try:
        return cls.from_config(config, lambda s, w: build_layer(s, limit, w)) \
            if hasattr(cls, "from_config") else cls(**config)
    except (TypeError, ValueError, OverflowError, MemoryError) as e:
        raise ValueError(f"{where}: cannot build {cls.__name__} from {config!r:.120}: {e}") \
            from None


def _check_ints(value, limit, where):
    if isinstance(value, bool):
        return
    if isinstance(value, int) and abs(value) > limit:
        raise ValueError(f"{where}: size {value} in the config exceeds what the file stores")
    if isinstance(value, float) and not np.isfinite(value):
        raise ValueError(f"{where}: non-finite number in the config")
    if isinstance(value, dict):
        for v in value.values():
            _check_ints(v, limit, where)
    if isinstance(value, list):
        for v in value:
            _check_ints(v, limit, where)


def load(path):
    """Rebuild a Sequential saved with ``save``. Never unpickles; checks every array."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise _bad(path, f"cannot read it as npz ({e})") from None
    except Exception as e:  # zipfile.BadZipFile and friends from truncated files
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    raw = arrays.pop("__arch__", None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise _bad(path, "no architecture record")
    try:
        arch = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"architecture is not JSON ({e})") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise _bad(path, "wrong format tag")
    if arch.get("version") != VERSION:
        raise _bad(path, f"unsupported version {arch.get('version')!r}")
    specs = arch.get("layers")
    if not isinstance(specs, list) or not specs:
        raise _bad(path, "no layers")
    limit = max(1 << 16, sum(int(a.size) for a in arrays.values()))
    try:
        layers = [build_layer(s, limit, f"layer {i}") for i, s in enumerate(specs)]
        loss = None
        if arch.get("loss") is not None:
            spec = arch["loss"]
            losses = {c.__name__: c for c in _loss_classes()}
            if not isinstance(spec, dict) or spec.get("type") not in losses:
                raise ValueError(f"unknown loss {spec!r:.60}")
            loss = losses[spec["type"]]()
        net = Sequential(layers, loss=loss)
        dtypes = {a.dtype for k, a in arrays.items() if k.startswith("params/")}
        if len(dtypes) == 1:
            net.astype(dtypes.pop())
        net.load_state(arrays)
    except ValueError as e:
        raise _bad(path, str(e)) from None
    return net


def _loss_classes():
    seen, todo = [], [Loss]
    while todo:
        c = todo.pop()
        for s in c.__subclasses__():
            seen.append(s)
            todo.append(s)
    return seen

