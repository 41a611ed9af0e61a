"""Training checkpoints: what a Trainer needs to continue a run bit for bit.

    trainer = Trainer(net, opt, epochs=10, seed=0, checkpoint="run.ckpt")  # one per epoch
    trainer.fit(x, t)                       # stopped after epoch k (Ctrl-C, a kill, ...)

    trainer = Trainer(new_net, new_opt, epochs=10 - k, seed=0, callbacks=[...])
    trainer.load_checkpoint("run.ckpt")     # the same architecture, optimizer type, callbacks
    trainer.fit(x, t)                       # epochs k+1..10, as the uninterrupted run had them

    net = cdl.checkpoint.load_model("run.ckpt")   # just the model, e.g. to evaluate it

A checkpoint is one ``.npz`` file (a zip of ``.npy`` arrays, as a model file
is), written atomically (``cdl._atomic``: a temporary file in the target's
folder, fsynced and renamed over the target, so a kill at any moment leaves
the previous checkpoint whole; the file gets the mode ``open()`` would give):

    __arch__             the model's architecture, as in a model file (``Sequential.save``)
    params/<name>        every parameter, e.g. params/0.W, as in a model file
    buffers/<name>       every buffer (BatchNorm's running statistics)
    __checkpoint__       UTF-8 JSON: {"format": "cdl-checkpoint", "version": 1, "epoch",
                         "history", "optimizer", "rng", "callbacks"}, where an array
                         appears as {"__array__": member name}
    history/<key>        trainer.history's lists (int64 or float64)
    optimizer/...        the optimizer's ``state_dict()``: lr, step count t, and its
                         per-parameter arrays (Adam's m and v, ...) as host copies
    callbacks/<i>/...    arrays of the callbacks' ``state_dict()`` (EMA's averages, ...)

Saved: the model's parameters and buffers; the optimizer's state; the epoch
and history; the states (``bit_generator.state``, as JSON) of the trainer's
shuffle generator (which also drives ``augment``), of its noise generator
(Dropout & co. built without an ``rng``), of every layer's own generator, and
of a seeded DataLoader's generator (applied when ``fit`` gets that loader);
the state of every callback with ``state_dict()``: the learning-rate
schedules (lr0 and the update count), EMA and PolyakAverage (averages and
their count) and EarlyStopping (best, wait, the best snapshot).

Not saved: the optimizer's hyperparameters other than lr and its
``lr_multipliers`` (the constructor's apply), the trainer's configuration
(batch size, epochs, augment), callbacks without ``state_dict()``, and cdl's
package generator (``cdl.seed``), which Dropout uses in a trainer without a
seed: such a run resumes, but not bit for bit. ``GradClip.last_norm`` is
not state. A stop requested by EarlyStopping is not replayed on resume.

Data parallel (``Trainer(..., comm=comm)``, ``cdl.distributed``): rank 0 alone
writes (``save_checkpoint`` does nothing on the others), every rank loads the
same file. Nothing in it is per rank: the model and the optimizer state are
every rank's, an ``AllReduceOptimizer`` saves the plain optimizer's state,
the shuffle generator is shared, and the noise generators saved are rank 0's
(the other ranks derive theirs from rank 0's at every epoch). So a checkpoint
resumes on any number of ranks, one process included, with the same global
batch (per-rank batch_size times ranks) continuing the same run up to
floating-point rounding.

Loading never unpickles and checks the file before it changes anything:
the zip directory and npy headers first (``cdl._serial``: sizes against the
file, no object arrays), the JSON records with bounded size and nesting,
the architecture against the trainer's model, every name, shape and dtype
against the live model and optimizer, every generator state against its bit
generator's layout, then the values (finite; variances >= 0). A missing
file raises FileNotFoundError, anything wrong inside it ValueError naming
the file and the reason. Callbacks' ``load_state_dict`` runs last; a user
callback that refuses its state leaves the rest restored.
"""
import json
import math

import numpy as np

from cdl import _serial
from cdl._atomic import atomic_savez, check_save_path
from cdl.rngstate import generator, rng_state, set_generator

FORMAT = "cdl-checkpoint"
VERSION = 1
META = "__checkpoint__"
_KEYS = {"format", "version", "epoch", "history", "optimizer", "rng", "callbacks"}

# -- writing ----------------------------------------------------------------------------

def save(trainer, path, who="Trainer.save_checkpoint"):
    """Write trainer's checkpoint to path, atomically (see the module docstring); who names
    the caller in error messages."""
    from cdl import cuda
    from cdl.model_file import architecture
    model = trainer.model
    _require_sequential(who, model)
    check_save_path(path)
    optimizer = trainer.optimizer
    if not callable(getattr(optimizer, "state_dict", None)):
        raise ValueError(f"{who}: the optimizer {type(optimizer).__name__} has no "
                         f"state_dict(); cdl's first-order optimizers have one")
    arrays = {"__arch__": _json_bytes(architecture(model))}
    arrays.update({k: cuda.to_host(v) for k, v in model.state().items()})
    tree = {"format": FORMAT, "version": VERSION, "epoch": trainer.epoch,
            "history": {k: _history_array(who, k, v) for k, v in trainer.history.items()},
            "optimizer": optimizer.state_dict(),
            "rng": _rng_states(trainer),
            "callbacks": [{"type": type(cb).__name__, "state": cb.state_dict()}
                          for cb in _stateful(trainer.callbacks)]}
    arrays[META] = _json_bytes(_encode(who, tree, "", arrays))
    atomic_savez(path, arrays, who=who)


def _json_bytes(value):
    return np.frombuffer(json.dumps(value, allow_nan=False).encode(), dtype=np.uint8)


def _require_sequential(who, model):
    if not all(hasattr(model, a) for a in ("layers", "state", "load_state", "loss_layer")):
        raise ValueError(f"{who}: checkpoints hold a cdl Sequential, got "
                         f"{type(model).__name__}")


def _stateful(callbacks):
    return [cb for cb in callbacks if callable(getattr(cb, "state_dict", None))]


def _history_array(who, key, values):
    a = np.asarray(values)
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        raise ValueError(f"{who}: history[{key!r}] must be a list of numbers to be "
                         f"checkpointed, got {values!r:.60}")
    return a.astype(np.int64 if a.dtype.kind in "biu" else np.float64)


def _encode(who, value, path, arrays):
    """value as JSON, each array stored in arrays under a member name and referenced."""
    from cdl import cuda
    from cdl._checks import is_device_array
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or k == "__array__":
                raise ValueError(f"{who}: cannot checkpoint key {k!r:.40} at {path or '/'}")
            out[k] = _encode(who, v, f"{path}/{k}" if path else k, arrays)
        return out
    if isinstance(value, (list, tuple)):
        return [_encode(who, v, f"{path}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.ndarray) or is_device_array(value):
        name, i = path, 1
        while name in arrays:
            i += 1
            name = f"{path}~{i}"
        arrays[name] = np.ascontiguousarray(cuda.to_host(value))
        return {"__array__": name}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{who}: cannot checkpoint the non-finite {value} at {path}")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{who}: cannot checkpoint a {type(value).__name__} at {path}")


def _rng_states(trainer):
    from cdl.model import walk
    layers = {prefix[:-1]: rng_state(layer._rng) for prefix, layer in walk(trainer.model.layers)
              if isinstance(getattr(layer, "_rng", None), np.random.Generator)}
    loader = getattr(trainer, "_loader", None)
    return {"trainer": rng_state(trainer.rng),
            "noise": None if trainer.noise_rng is None else rng_state(trainer.noise_rng),
            "layers": layers,
            "loader": None if loader is None else rng_state(loader.rng)}


# -- reading ----------------------------------------------------------------------------

def load(trainer, path, who="Trainer.load_checkpoint"):
    """Restore trainer from the checkpoint at path (see the module docstring); who names the
    caller in error messages."""
    _require_sequential(who, trainer.model)
    try:
        with _serial.ModelFile(path) as mf:
            parts = _read(mf, trainer)
    except ValueError as e:
        raise ValueError(f"{who}: {path} is not a valid checkpoint of this run: {e}") \
            from None
    if getattr(trainer, "device", "cpu") == "cuda" and not trainer.model._on_device():
        trainer.model.to_device()  # the optimizer's state then goes where the params are
    _apply(trainer, parts, f"{who}: {path}")


def load_model(path):
    """The Sequential the checkpoint at path holds (architecture, parameters, buffers),
    checked as ``cdl.load`` checks a model file; FileNotFoundError or ValueError as
    ``load``."""
    from cdl.model_file import from_model_file
    try:
        with _serial.ModelFile(path) as mf:
            _meta(mf)
            return from_model_file(_ModelPart(mf))
    except ValueError as e:
        raise ValueError(f"cdl.checkpoint.load_model: {path} is not a valid cdl checkpoint: "
                         f"{e}") from None


class _ModelPart:
    """The model file inside a checkpoint: its __arch__, params/ and buffers/ members."""

    def __init__(self, mf):
        self.members = {k: m for k, m in mf.members.items() if _is_model_member(k)}
        self.read = mf.read


def _is_model_member(name):
    return name == "__arch__" or name.startswith(("params/", "buffers/"))


def _meta(mf):
    meta = _serial.read_json(mf, META, "checkpoint")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("wrong format tag (a model file? load it with cdl.load)")
    if meta.get("version") != VERSION:
        raise ValueError(f"unsupported version {meta.get('version')!r:.40}")
    if set(meta) != _KEYS:
        raise ValueError(f"checkpoint record with keys {sorted(meta)[:8]}, expected "
                         f"{sorted(_KEYS)}")
    return meta


def _read(mf, trainer):
    """Everything the checkpoint holds, checked against trainer, read and decoded."""
    from cdl.model_file import architecture
    model = trainer.model
    meta = _meta(mf)
    arch = _serial.read_json(mf, "__arch__", "architecture")
    _same_architecture(arch, json.loads(json.dumps(architecture(model))))
    mine = model.state()
    held = {k: m for k, m in mf.members.items() if k.startswith(("params/", "buffers/"))}
    if set(held) != set(mine):
        missing, extra = sorted(set(mine) - set(held)), sorted(set(held) - set(mine))
        raise ValueError(f"model arrays: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, m in held.items():
        if m.shape != mine[k].shape or m.dtype.newbyteorder("=") != mine[k].dtype:
            raise ValueError(f"{k} is {m.dtype} {m.shape}, the model's {mine[k].dtype} "
                             f"{mine[k].shape}")
    used = set()
    tree = _decode(meta, mf, used)
    unused = sorted(k for k in mf.members if k not in used and k != META
                    and not _is_model_member(k))
    if unused:
        raise ValueError(f"unreferenced members {unused[:5]}")
    state = {k: mf.read(k) for k in held}
    for k, v in state.items():
        if not np.isfinite(v).all():
            raise ValueError(f"{k} holds NaN or Inf")
        if k.endswith("running_var") and (v < 0).any():
            raise ValueError(f"{k} holds negative variances")
    epoch = tree["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch < 1 << 62:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r:.40}")
    return {"state": state, "epoch": epoch, "history": _history(tree["history"]),
            "optimizer": _optimizer(trainer.optimizer, tree["optimizer"], model.params),
            "rng": _rngs(tree["rng"], model),
            "callbacks": _callbacks(tree["callbacks"], trainer.callbacks)}


def _same_architecture(held, mine):
    if held == mine:
        return
    if not isinstance(held, dict):
        raise ValueError("the architecture record is not an object")
    a, b = held.get("layers"), mine["layers"]
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                raise ValueError(f"it holds another model: layer {i} is {json.dumps(x):.100} "
                                 f"there, {json.dumps(y):.100} here")
        if len(a) != len(b):
            raise ValueError(f"it holds another model: {len(a)} layers there, {len(b)} here")
    raise ValueError(f"it holds another model: loss {held.get('loss')!r:.80} there, "
                     f"{mine['loss']!r:.80} here")


def _decode(value, mf, used):
    """value with each {"__array__": name} replaced by that member's array, read."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            name = value["__array__"]
            if not isinstance(name, str) or name not in mf.members or name == META \
                    or _is_model_member(name):
                raise ValueError(f"reference to a missing member {name!r:.80}")
            if name in used:
                raise ValueError(f"member {name!r:.80} referenced twice")
            if mf.members[name].dtype.kind not in "biuf":
                raise ValueError(f"member {name!r:.80} has dtype {mf.members[name].dtype}")
            used.add(name)
            return mf.read(name)
        return {k: _decode(v, mf, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, mf, used) for v in value]
    return value


def _history(history):
    if not isinstance(history, dict):
        raise ValueError("history must be an object")
    out = {}
    for k, a in history.items():
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "iuf":
            raise ValueError(f"history[{k!r:.40}] must be a 1-D numeric array")
        out[k] = a.tolist()
    return out


def _optimizer(optimizer, state, params):
    """The optimizer's state as its load_state_dict takes it, checked when it can be."""
    if not callable(getattr(optimizer, "load_state_dict", None)):
        raise ValueError(f"the optimizer {type(optimizer).__name__} has no load_state_dict()")
    check = getattr(optimizer, "_checked_state", None)
    if check is not None:
        try:
            check(state, params)
        except ValueError as e:
            raise ValueError(f"optimizer: {e}") from None
    return state


def _rngs(rng, model):
    from cdl.model import walk
    if not isinstance(rng, dict) or set(rng) != {"trainer", "noise", "layers", "loader"}:
        raise ValueError("rng must be an object with trainer, noise, layers, loader")
    out = {"trainer": generator(rng["trainer"])}
    for k in ("noise", "loader"):
        out[k] = None if rng[k] is None else generator(rng[k])
    own = {prefix[:-1]: layer for prefix, layer in walk(model.layers)
           if isinstance(getattr(layer, "_rng", None), np.random.Generator)}
    layers = rng["layers"]
    if not isinstance(layers, dict) or set(layers) != set(own):
        held = sorted(layers) if isinstance(layers, dict) else layers
        raise ValueError(f"generators of layers {held!r:.80} there, of layers "
                         f"{sorted(own)} here (a layer's rng= must be given as when saved)")
    out["layers"] = {k: (own[k], generator(s)) for k, s in layers.items()}
    return out


def _callbacks(held, callbacks):
    mine = _stateful(callbacks)
    if not isinstance(held, list) or not all(isinstance(c, dict) and set(c) == {"type", "state"}
                                             for c in held):
        raise ValueError("callbacks must be a list of {type, state}")
    types = [c["type"] for c in held]
    if types != [type(cb).__name__ for cb in mine]:
        raise ValueError(f"callbacks with state {types!r:.120} there, "
                         f"{[type(cb).__name__ for cb in mine]} here")
    return [(cb, c["state"]) for cb, c in zip(mine, held)]


def _apply(trainer, parts, where):
    model = trainer.model
    model.load_state(parts["state"])
    trainer.optimizer.load_state_dict(parts["optimizer"], model.params)
    rng = parts["rng"]
    trainer.rng = set_generator(trainer.rng, rng["trainer"])
    trainer.noise_rng = None if rng["noise"] is None else \
        set_generator(trainer.noise_rng, rng["noise"])
    for layer, g in rng["layers"].values():
        layer._rng = set_generator(layer._rng, g)
    trainer._loader_rng = rng["loader"]  # applied when fit gets the seeded DataLoader
    trainer.epoch, trainer.history = parts["epoch"], parts["history"]
    for cb, state in parts["callbacks"]:
        try:
            cb.load_state_dict(state, model)
        except ValueError as e:
            raise ValueError(f"{where}: callback {type(cb).__name__}: {e}") from None
