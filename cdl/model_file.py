"""Model files: a Sequential saved as one ``.npz``, and loaded back safely.

A saved model is the architecture as JSON text plus one array per parameter
and buffer. Loading never unpickles and only rebuilds layer classes
registered by cdl from their JSON config, so a model file is data and never
code; sizes, names, shapes and dtypes are checked against the file before
anything is allocated (``cdl._serial``). Writes go to a temporary file that
replaces the target only once complete (``cdl._atomic``): a crash mid-save
keeps the old file, and a killed save's temporary file is removed by the
next save to the same path. Checkpoints (``cdl.checkpoint``) hold the same
architecture record.
"""
import functools
import inspect
import json
import math

import numpy as np

from cdl import _serial
from cdl._atomic import atomic_savez
from cdl.layers.base import registered_layers
from cdl.layers.loss import Loss

FORMAT = "cdl-model"
VERSION = 1


def save(model, path):
    """Write model's architecture and weights to path (an .npz), atomically."""
    arch = json.dumps(architecture(model)).encode()
    arrays = {"__arch__": np.frombuffer(arch, dtype=np.uint8)}
    from cdl import cuda  # a model on the GPU is saved from host copies of its arrays
    arrays.update({k: cuda.to_host(v) for k, v in model.state().items()})
    atomic_savez(path, arrays, who="Sequential.save")


def architecture(model):
    """The architecture record of a model file (checkpoints hold it too)."""
    loss = model.loss_layer
    return {"format": FORMAT, "version": VERSION,
            "layers": [layer_spec(layer) for layer in model.layers],
            "loss": None if loss is None else {"type": type(loss).__name__,
                                               "config": loss.config()}}


def layer_spec(layer):
    """{"type": class name, "config": constructor kwargs} of layer (containers nest specs)."""
    return {"type": type(layer).__name__, "config": layer.config()}


def _bad(path, why):
    return ValueError(f"cdl.load: {path} is not a valid cdl model file: {why}")


def _unfilled(shape, rng, dtype):
    """An initializer that draws nothing: for weights that loading overwrites at once."""
    return np.zeros(shape, dtype=dtype)  # calloc: pages are touched only when written


@functools.lru_cache(maxsize=None)
def _arguments(cls):
    return frozenset(inspect.signature(cls).parameters)


def build_layer(spec, limit=None, where="layer", dtype=None, depth=1):
    """A layer from its JSON spec, with unfilled weights in dtype for the layers of cdl.

    limit (for the layer types of users, whose state ``_serial.declared_state``
    cannot foresee): every int in the config must be <= limit, the number of
    stored values, so that a forged config cannot ask a constructor for an
    absurd allocation before the stored shapes are checked. where names the layer in
    error messages; depth is its nesting level (refused beyond MAX_LAYER_DEPTH).
    """
    if depth > _serial.MAX_LAYER_DEPTH:
        raise ValueError(f"{where}: layers nested more than {_serial.MAX_LAYER_DEPTH} deep")
    classes = registered_layers()
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise ValueError(f"{where}: expected {{'type', 'config'}}, got {spec!r:.80}")
    cls = classes.get(spec["type"]) if isinstance(spec["type"], str) else None
    if cls is None:
        raise ValueError(f"{where}: unknown layer type {spec['type']!r:.40}")
    config = spec["config"]
    if not isinstance(config, dict):
        raise ValueError(f"{where}: config must be an object")
    if limit is not None:
        _check_ints(config, limit, where)
    kwargs = dict(config)
    if cls.__name__ in _serial.RULES and not hasattr(cls, "from_config"):
        args = _arguments(cls)
        if "init" in args:
            kwargs["init"] = _unfilled
        if "dtype" in args and dtype is not None:
            kwargs["dtype"] = dtype
    try:
        if hasattr(cls, "from_config"):
            return cls.from_config(config, lambda s, w: build_layer(s, limit, f"{where}: {w}",
                                                                    dtype, depth + 1))
        return cls(**kwargs)
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
    """Rebuild a Sequential saved with ``save``: the architecture, then every array, checked.

    Raises FileNotFoundError (or another OSError) when path cannot be opened,
    and ValueError, naming path and the reason, for anything wrong inside it.
    Never unpickles. Every check on sizes, names, shapes and dtypes runs on
    the zip directory, the npy headers and the architecture JSON, before a
    layer is built or an array inflated (see ``cdl._serial``); then values:
    parameters and buffers finite, BatchNorm's running_var >= 0.
    """
    try:
        with _serial.ModelFile(path) as mf:
            return from_model_file(mf)
    except ValueError as e:
        raise _bad(path, str(e)) from None


def from_model_file(mf):
    """The Sequential held by mf, an open ``_serial.ModelFile`` (or a checkpoint's model
    part)."""
    members = mf.members
    arch = _serial.read_json(mf, "__arch__", "architecture")
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise ValueError("wrong format tag")
    if arch.get("version") != VERSION:
        raise ValueError(f"unsupported version {arch.get('version')!r:.40}")
    specs = arch.get("layers")
    if not isinstance(specs, list) or not specs:
        raise ValueError("no layers")
    loss_spec = arch.get("loss")
    losses = {c.__name__: c for c in _loss_classes()}
    if loss_spec is not None and not (isinstance(loss_spec, dict)
                                      and isinstance(loss_spec.get("type"), str)
                                      and loss_spec["type"] in losses):
        raise ValueError(f"unknown loss {loss_spec!r:.60}")
    dtype = _serial.state_dtype(members)
    declared = _serial.declared_state(specs, registered_layers())
    limit = None
    if declared is None:  # a user's layer type: bound each size by what the file holds
        limit = max(1 << 16, sum(math.prod(m.shape) for m in members.values()))
    else:
        _serial.compare_state(declared, members)
    layers = [build_layer(s, limit, f"layer {i}", dtype) for i, s in enumerate(specs)]
    loss = None if loss_spec is None else losses[loss_spec["type"]]()
    from cdl.model import Sequential  # cdl.model imports this module
    net = Sequential(layers, loss=loss)
    net.astype(dtype)
    net.load_state({k: mf.read(k) for k in members if k != "__arch__"})
    return net


def _loss_classes():
    seen, todo = [], [Loss]
    while todo:
        c = todo.pop()
        for s in c.__subclasses__():
            if not s.__name__.startswith("_"):  # private bases are not losses a file may name
                seen.append(s)
            todo.append(s)
    return seen

