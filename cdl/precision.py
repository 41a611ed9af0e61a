"""16-bit floats: mixed-precision training and float16 inference.

    trainer = Trainer(net, optim.Adam(), precision="float16")   # or cdl train --precision float16
    half = cdl.precision.to_float16(net)                         # or net.half()
    half.accuracy(x_test, t_test); nbytes(half) == nbytes(net) / 2

cdl's kernels compute in float32 (or float64); float16 is a *storage* format
here, as it is for the inputs of a GPU's tensor cores, which multiply float16
and accumulate in float32. What is stored in float16, and what is not:

Mixed-precision training (Micikevicius et al. 2018, "Mixed Precision Training")

- The model's parameters stay float32: they are the master weights the
  optimizer updates. Before each step they are cast to a float16 copy, and
  every layer computes its forward and backward from float32 values of that
  copy, upcast while the layer runs (its ``params`` hold them for the call).
- Activations: each layer's output is rounded to float16 (the kernel
  ``round_float16``, in place, one pass, which also writes its float16 copy)
  and handed on in float32; what a layer caches for backward (its underscore
  attributes that are float32 arrays, ``self._x`` & co.) is stored as float16
  from the end of its forward until its backward, which gets float32 copies
  back; after the backward the caches are dropped. The arrays kept from forward
  to backward take half the bytes (``cached_bytes``); the layer being computed
  works in float32, so a step's peak falls by less (the README has figures).
  Inside a container (Residual, Concat) the children hand each other float32;
  their caches are stored as float16 all the same. Caches that are not arrays
  (the binary layers' tuples) stay as they are.
- Gradients: the loss is multiplied by the loss scale S before backward; the
  gradient flowing between layers and each weight gradient are rounded to
  float16 (where they would underflow without S, or overflow: +-Inf beyond
  65504), then the weight gradients are unscaled in float32 (times 1/S) and
  checked with the kernel ``all_finite``. Weight decay is added after
  unscaling.
- Dynamic loss scaling (``LossScaler``, in cdl.loss_scaling; the semantics of PyTorch's
  ``torch.cuda.amp.GradScaler``): a step whose gradients hold Inf or NaN is
  skipped (the optimizer is not called) and S is halved; after
  ``growth_interval`` (2000) consecutive finite steps S is doubled. S starts
  at 2^16. The scaler rides along as the trainer's last callback, so
  checkpoints save and restore its state.
- Casts are the backend's ``copy`` kernel, rounding and the check are kernels,
  so a model on the GPU trains the same way there.

A CPU has no float16 arithmetic to gain from: the casts and roundings are
extra passes over memory, so a float16 step is slower than a float32 one (the
README has figures).

Float16 inference (the book's half-float experiment, ch. 8): ``to_float16``
gives a copy of a model whose parameters and buffers are float16 (half the
bytes) and whose activations are rounded to float16 between layers; each
layer computes in float32 from upcast copies of its weights (and buffers),
one layer at a time.
"""
import contextlib
import copy

import numpy as np

from cdl._checks import is_device_array
from cdl.backend import kernels_for
from cdl.layers.base import cast
from cdl.loss_scaling import LossScaler
from cdl.model import Sequential, walk

FLOAT16 = np.dtype(np.float16)
FLOAT32 = np.dtype(np.float32)
PRECISIONS = ("float32", "float16")


def _cast(a, dtype):
    """a in dtype (``cdl.layers.base.cast``: a itself or a copy by the backend's copy kernel;
    float32 -> float16 rounds to nearest; beyond 65504 it gives +-Inf, no warning)."""
    if dtype == FLOAT16:
        with np.errstate(over="ignore", invalid="ignore"):  # Inf is what the scaler looks for
            return cast(kernels_for(a), a, dtype)
    return cast(kernels_for(a), a, dtype)


def _rounded(a, keep=True, own=True):
    """(a rounded to float16 values in float32, its float16 copy or None without keep): in
    place when the step owns a (own) and it is a C-contiguous float32 array, else a new
    array (the kernel round_float16, one pass; +-Inf beyond 65504)."""
    if a.dtype != FLOAT32 or not (is_device_array(a) or a.flags.c_contiguous):
        h = _cast(a, FLOAT16)
        return _cast(h, FLOAT32), (h if keep else None)
    K = kernels_for(a)
    half = K.empty(a.shape, FLOAT16) if keep else None
    out = a if own else K.empty(a.shape, FLOAT32)
    return K.round_float16(a, out, half), half


def nbytes(model):
    """Bytes of a model's parameters and buffers (host or device arrays)."""
    return int(sum(v.size * v.dtype.itemsize for v in model.state().values()))


def _root(a):
    """The array that owns a's memory (a NumPy view's base, followed to the end)."""
    while getattr(a, "base", None) is not None and not is_device_array(a):
        a = a.base
    return a


def _is_array(v):
    # the simulator's helper objects (its shapes) pass is_device_array: ask for a dtype too
    return isinstance(v, np.ndarray) or (is_device_array(v) and hasattr(v, "dtype"))


def cached_bytes(model):
    """Bytes of the arrays a model's layers hold for backward (their underscore attributes),
    each memory block counted once (a view and its base share it): the activation memory
    a training forward keeps until backward."""
    seen, total = set(), 0
    for _, layer in walk(model.layers):
        for k, v in vars(layer).items():
            if k.startswith("_") and _is_array(v):
                root = _root(v)
                if id(root) not in seen:
                    seen.add(id(root))
                    total += root.size * root.dtype.itemsize
    return total


# -- float16 storage of weights and caches ---------------------------------------------

@contextlib.contextmanager
def _in_float32(layer, half, store="params"):
    """Within the block, layer's (and its children's) params (or another store: "buffers")
    are float32 copies of their float16 storage (half: {sublayer: {name: float16 array}});
    the originals come back after it, also when it raises."""
    saved = []
    try:
        for _, sub in walk([layer]):
            stored = half.get(sub)
            if stored:
                arrays = getattr(sub, store)
                saved.append((arrays, dict(arrays)))
                for k, h in stored.items():
                    arrays[k] = _cast(h, FLOAT32)
        yield
    finally:
        for arrays, originals in saved:
            arrays.update(originals)


def _protected(layer):
    """ids of the arrays a layer (and its children) owns as params, grads or buffers."""
    return {id(v) for _, sub in walk([layer])
            for store in (sub.params, sub.grads, sub.buffers) for v in store.values()}


def _snapshot(layer):
    """{sublayer: {attribute: value}} of the array attributes, before a forward."""
    return {sub: {k: v for k, v in vars(sub).items() if k.startswith("_") and _is_array(v)}
            for _, sub in walk([layer])}


def _store_caches(layer, before, known):
    """Replace the float32 arrays the forward cached (underscore attributes new since
    ``before``) by float16 copies; known: {id(root): (root, float16 copy)}, so that arrays
    sharing memory share their copy. Returns {sublayer: [attribute names]}."""
    protected = _protected(layer)
    stored = {}
    for _, sub in walk([layer]):
        old = before.get(sub, {})
        for k, v in list(vars(sub).items()):
            if not (k.startswith("_") and _is_array(v)) or old.get(k) is v \
                    or v.dtype != FLOAT32 or id(v) in protected:
                continue
            setattr(sub, k, _half_of(v, known))
            stored.setdefault(sub, []).append(k)
    return stored


def _half_of(v, known):
    """v's float16 copy, reusing that of the array whose memory v shares when v is a
    whole-array reshape of it."""
    root = _root(v)
    hit = known.get(id(root))
    if hit is not None and hit[1].size == v.size and (is_device_array(v) or
                                                      v.flags.c_contiguous):
        return hit[1].reshape(v.shape)
    h = _cast(v, FLOAT16)
    if root is v or root.size == v.size:
        known[id(root)] = (root, h.reshape(root.shape))
    return h


@contextlib.contextmanager
def _caches_in_float32(stored):
    """Within the block (the layer's backward) its stored caches are float32 again;
    afterwards they are dropped (None), as the step is done with them."""
    for sub, names in stored.items():
        for k in names:
            setattr(sub, k, _cast(getattr(sub, k), FLOAT32))
    try:
        yield
    finally:
        for sub, names in stored.items():
            for k in names:
                setattr(sub, k, None)


class MixedPrecision:
    """One training step in mixed precision for a Sequential (see the module docstring).

        mp = MixedPrecision(net)          # net in float32
        loss = mp.loss(x, t)              # float16 storage, float32 compute; a float
        mp.backward()                     # scaled gradients, float16 between layers
        stepped = mp.update(optimizer)    # unscale, check, update or skip; adjust the scale

    ``Trainer(precision="float16")`` does this for every batch. model is the float32
    Sequential (its weights are the master copy); scaler a LossScaler (default: a new
    one with PyTorch's settings).
    """

    def __init__(self, model, scaler=None):
        if not isinstance(model, Sequential) or isinstance(model, Float16Model):
            raise ValueError(f"precision='float16' trains a cdl Sequential, got "
                             f"{type(model).__name__}")
        self.model = model
        self.scaler = LossScaler() if scaler is None else scaler
        self._half = {}      # {layer: {param name: float16 copy of the master weight}}
        self._stored = None  # per top-level layer, the caches its forward stored as float16
        self._check_dtype()

    def _check_dtype(self):
        wrong = {k: str(v.dtype) for k, v in self.model.state().items() if v.dtype != FLOAT32}
        if wrong:
            name, dtype = next(iter(wrong.items()))
            raise ValueError(f"precision='float16' needs a float32 model (its master weights); "
                             f"{name} is {dtype}")

    def _refresh_half(self):
        """The float16 copies of the current master weights, cast in place."""
        for _, layer in walk(self.model.layers):
            if not layer.params:
                continue
            mine = self._half.setdefault(layer, {})
            for k, w in layer.params.items():
                h = mine.get(k)
                if h is None or h.shape != w.shape or is_device_array(h) != is_device_array(w):
                    K = kernels_for(w)
                    h = mine[k] = K.empty(w.shape, FLOAT16)
                with np.errstate(over="ignore"):
                    kernels_for(w).copy(w, h)

    def loss(self, x, t):
        """Forward in training mode with float16 storage; the loss (plus weight decay) as a
        float, unscaled."""
        model = self.model
        if model.loss_layer is None:
            raise RuntimeError("MixedPrecision.loss: the model has no loss")
        self._check_dtype()
        self._refresh_half()
        xin, h_in = _rounded(x, own=False)  # the caller's batch stays as it is
        self._stored = []
        for layer in model.layers:
            before = _snapshot(layer)
            with _in_float32(layer, self._half):
                y = layer.forward(xin, train=True)
            if _root(y) is _root(xin) and y.size == xin.size:  # a reshape (Flatten)
                h = h_in.reshape(y.shape)
            else:  # the output, a new array of this step, rounded in place
                y, h = _rounded(y)
            # the layer's input and output have float16 copies already: caches of them
            # (self._x, a pooling layer's self._y) share those rather than copy again
            known = {}
            for a, a16 in ((xin, h_in), (y, h)):
                root = _root(a)
                if root.size == a.size:
                    known[id(root)] = (root, a16.reshape(root.shape))
            self._stored.append(_store_caches(layer, before, known))
            xin, h_in = y, h
            del y, known
        value = model.loss_layer.forward(xin, t)
        if model.weight_decay is not None:
            value += model.weight_decay.penalty(model.layers)
        return value

    def backward(self, input_grad=False):
        """Scaled gradients into every layer's grads (rounded to float16 between layers;
        weight gradients rounded to float16, kept in float32); dL/dx (scaled) with
        input_grad."""
        if self._stored is None:
            raise RuntimeError("MixedPrecision.backward: call loss(x, t) first")
        with np.errstate(over="ignore", invalid="ignore"):  # Inf/NaN here: the scaler's job
            return self._backward(input_grad)

    def _backward(self, input_grad):
        model, stored, self._stored = self.model, self._stored, None
        d = _rounded(model.loss_layer.backward(self.scaler.scale), keep=False)[0]
        for i in range(len(model.layers) - 1, -1, -1):
            layer = model.layers[i]
            with _caches_in_float32(stored[i]), _in_float32(layer, self._half):
                if i == 0 and not input_grad:
                    layer.backward_params(d)
                    d = None
                else:
                    d = layer.backward(d)
            for _, sub in walk([layer]):
                for k, g in sub.grads.items():
                    if g.dtype == FLOAT32:
                        sub.grads[k] = _rounded(g, keep=False)[0]
            if d is not None:  # dL/dx, a new array of this step (or a reshape of one)
                d = _rounded(d, keep=False)[0]
        return d

    def update(self, optimizer):
        """Unscale the gradients; if all finite, add weight decay and let the optimizer update
        the master weights, else skip the step; then adjust the scale. True when it stepped."""
        model = self.model
        finite = self.scaler.unscale(model.grads)
        if finite:
            if model.weight_decay is not None:
                model.weight_decay.add_grads(model.layers)
            optimizer.update(model.params, model.grads)
        self.scaler.update(finite)
        return finite


# -- float16 inference ------------------------------------------------------------------

class Float16Model(Sequential):
    """An inference-only Sequential whose parameters and buffers are float16 (``to_float16``).

    ``forward`` rounds activations to float16 between layers and runs each layer in
    float32 on upcast copies of its weights (one layer's at a time); outputs are float32
    (of float16 values). ``predict``, ``accuracy``, ``predict_proba``, ``summary`` and
    ``to_device`` work as on any Sequential; training and ``save`` do not (keep the
    float32 model for those). The constructor is Sequential's (layers, loss,
    weight_decay, input_shape); ``to_float16`` builds one from a float32 model.
    """

    def forward(self, x, train=False):
        if train:
            raise RuntimeError("Float16Model is for inference; train the float32 model "
                               "(Trainer(..., precision='float16') for mixed precision)")
        half = {layer: dict(layer.params) for _, layer in walk(self.layers)}
        buffers = {layer: dict(layer.buffers) for _, layer in walk(self.layers)}
        x = _rounded(x, keep=False, own=False)[0]
        for layer in self.layers:
            with _in_float32(layer, half), _in_float32(layer, buffers, "buffers"):
                y = layer.forward(x, train=False)
            own = not (_root(y) is _root(x) and y.size == x.size)  # not a reshape of x
            x = _rounded(y, keep=False, own=own)[0] if own else y
        return x

    def loss(self, x, t):
        raise RuntimeError("Float16Model is for inference; train the float32 model")

    def backward(self, dout=1.0, input_grad=True):
        raise RuntimeError("Float16Model is for inference; train the float32 model")

    def save(self, path):
        raise RuntimeError("Float16Model.save: save the float32 model (model files hold "
                           "float32 or float64)")


def to_float16(model):
    """A Float16Model copy of model (a float32 or float64 Sequential): parameters and buffers
    stored as float16, so ``nbytes`` is half (a quarter from float64); the model itself is
    unchanged. Values beyond float16's range (65504) are refused (ValueError)."""
    if not isinstance(model, Sequential):
        raise ValueError(f"to_float16: expected a cdl Sequential, got {type(model).__name__}")
    memo = {}
    for name, v in model.state().items():
        h = _cast(v, FLOAT16)
        K = kernels_for(h)
        if not K.all_finite(_cast(h, FLOAT32)):
            raise ValueError(f"to_float16: {name} holds values beyond float16's range "
                             f"(|x| > 65504) or not finite")
        memo[id(v)] = h
    for _, layer in walk(model.layers):
        for g in layer.grads.values():
            memo[id(g)] = kernels_for(g).zeros(g.shape, FLOAT16)
        for k, v in vars(layer).items():  # forward caches of the last training step: dropped
            if k.startswith("_") and (_is_array(v) or (isinstance(v, (tuple, list)) and
                                                       any(_is_array(a) for a in v))):
                memo[id(v)] = None
    layers = copy.deepcopy(model.layers, memo)
    half = Float16Model(layers, loss=copy.deepcopy(model.loss_layer),
                        input_shape=model.input_shape)
    return half
