"""Container layers: Chain, Residual (ResNet) and Concat (Inception).

A container owns no parameters itself; they live in its children, and a
model names them flat by position: in ``Sequential([..., Residual(a, b,
shortcut=s)])`` at index 3, the W of ``b`` is "3.1.W" and that of the
shortcut "3.2.W" (the shortcut comes after the main path).

Residual's sums and Concat's channel copies are kernels
(``cdl.kernels.elementwise`` and its CUDA twin), so blocks run on the GPU
when their input does.
"""
import numpy as np

from cdl._checks import check_float
from cdl.backend import kernels_for
from cdl.layers.base import Layer


def _as_layer(who, item):
    """A Layer, or a list/tuple of layers wrapped in a Chain."""
    if isinstance(item, Layer):
        return item
    if isinstance(item, (list, tuple)):
        return Chain(*item)
    raise ValueError(f"{who}: expected a cdl Layer or a list of layers, got {type(item).__name__}")


def _sum(a, b):
    """a + b in a new array on their device (in the wider dtype of the two)."""
    K = kernels_for(a, b)
    return K.add(a, b, K.empty(a.shape, np.result_type(a.dtype, b.dtype)))


class _Container(Layer):
    """Children, recursive astype, and JSON config with nested layer specs."""

    def __init__(self):
        super().__init__()
        self._y_shape = None

    def children(self):
        return list(self._children)

    def astype(self, dtype):
        super().astype(dtype)
        for child in self._children:
            child.astype(dtype)
        return self

    @staticmethod
    def _spec(layer):
        return {"type": type(layer).__name__, "config": layer.config()}


class Chain(_Container):
    """Layers applied in order as one layer: x -> layers[-1](...layers[0](x))."""

    def __init__(self, *layers):
        super().__init__()
        if not layers:
            raise ValueError("Chain: needs at least one layer")
        self._children = [_as_layer("Chain", l) for l in layers]

    def config(self):
        return {"layers": [self._spec(l) for l in self._children]}

    @classmethod
    def from_config(cls, config, build):
        """The Chain that ``config()`` describes; build(spec, where) makes each child from
        its nested spec (the model loader passes its own builder)."""
        if set(config) != {"layers"} or not isinstance(config["layers"], list):
            raise ValueError("Chain config must be {'layers': [...]}")
        return cls(*[build(s, f"Chain layer {i}") for i, s in enumerate(config["layers"])])

    def forward(self, x, train=True):
        for layer in self._children:
            x = layer.forward(x, train=train)
        return x

    def backward(self, dout):
        for layer in reversed(self._children):
            dout = layer.backward(dout)
        return dout


class Residual(_Container):
    """y = F(x) + S(x): F the layers in order, S the shortcut (identity by default).

    Backward passes the gradient through both paths and adds them:
    dL/dx = dL/dy . (dF/dx + dS/dx), so with an identity shortcut the skip
    path carries dL/dy to x unchanged (He et al. 2016). Put the block's
    final ReLU after it, as a separate layer.
    """

    def __init__(self, *layers, shortcut=None):
        super().__init__()
        if not layers:
            raise ValueError("Residual: needs at least one layer on the main path")
        self.path = Chain(*(_as_layer("Residual", l) for l in layers))  # errors name Residual
        self.shortcut = None if shortcut is None else _as_layer("Residual", shortcut)
        self._children = [*self.path.children()] + ([self.shortcut] if self.shortcut else [])

    def config(self):
        return {"layers": [self._spec(l) for l in self.path.children()],
                "shortcut": None if self.shortcut is None else self._spec(self.shortcut)}

    @classmethod
    def from_config(cls, config, build):
        """The Residual that ``config()`` describes; build(spec, where) makes each layer
        and the shortcut from their nested specs."""
        if set(config) != {"layers", "shortcut"} or not isinstance(config["layers"], list):
            raise ValueError("Residual config must be {'layers': [...], 'shortcut': ...}")
        layers = [build(s, f"Residual layer {i}") for i, s in enumerate(config["layers"])]
        sc = config["shortcut"]
        return cls(*layers, shortcut=None if sc is None else build(sc, "Residual shortcut"))

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(2, 8))
        fx = self.path.forward(x, train=train)
        sx = x if self.shortcut is None else self.shortcut.forward(x, train=train)
        if fx.shape != sx.shape:
            raise ValueError(f"Residual: main path gives shape {fx.shape} but the shortcut gives "
                             f"{sx.shape} for input {x.shape}; use a projection shortcut")
        self._y_shape = fx.shape
        return _sum(fx, sx)

    def backward(self, dout):
        dout = self._check_dout(dout, self._cached(self._y_shape))
        dx = self.path.backward(dout)
        return _sum(dx, dout if self.shortcut is None else self.shortcut.backward(dout))


class Concat(_Container):
    """Inception-style branches joined along channels: y = [B_1(x), ..., B_k(x)] on axis 1.

    Each branch is a layer or a list of layers (run as a Chain); all must
    keep N and the spatial size. Backward splits dout by channel and sums
    the branches' dx.
    """

    def __init__(self, *branches):
        super().__init__()
        if len(branches) < 1:
            raise ValueError("Concat: needs at least one branch")
        self._children = [_as_layer("Concat", b) for b in branches]

    def config(self):
        return {"branches": [self._spec(b) for b in self._children]}

    @classmethod
    def from_config(cls, config, build):
        """The Concat that ``config()`` describes; build(spec, where) makes each branch
        from its nested spec."""
        if set(config) != {"branches"} or not isinstance(config["branches"], list):
            raise ValueError("Concat config must be {'branches': [...]}")
        return cls(*[build(s, f"Concat branch {i}") for i, s in enumerate(config["branches"])])

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=range(2, 8))
        outs = [b.forward(x, train=train) for b in self._children]
        rest = {o.shape[:1] + o.shape[2:] for o in outs}
        if len(rest) != 1:
            raise ValueError(f"Concat: branch outputs {[o.shape for o in outs]} differ in more "
                             f"than the channel axis (input {x.shape})")
        self._sizes = [o.shape[1] for o in outs]
        self._y_shape = (outs[0].shape[0], sum(self._sizes), *outs[0].shape[2:])
        K = kernels_for(*outs)
        y = K.empty(self._y_shape, np.result_type(*[o.dtype for o in outs]))
        c0 = 0
        for o in outs:
            K.copy_channels(o, c0, y)
            c0 += o.shape[1]
        return y

    def backward(self, dout):
        dout = self._check_dout(dout, self._cached(self._y_shape))
        if len(self._children) == 1:
            return self._children[0].backward(dout)
        K = kernels_for(dout)
        dx, ours, c0 = None, False, 0
        for branch, c in zip(self._children, self._sizes):
            d = K.slice_channels(dout, c0, K.empty((dout.shape[0], c, *dout.shape[2:]), dout.dtype))
            c0 += c
            g = branch.backward(d)
            if dx is None:
                dx = g
            elif ours and np.result_type(dx.dtype, g.dtype) == dx.dtype:
                K.add(dx, g, dx)  # dx is an array of ours: sum in place
            else:  # never add into a branch's own result: it may be a view of its input
                dx, ours = _sum(dx, g), True
        return dx
