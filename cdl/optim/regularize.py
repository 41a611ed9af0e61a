"""Weight decay: L2 and L1 penalties on a model's weights.

    net = Sequential(layers, loss=SoftmaxCrossEntropy(), weight_decay=WeightDecay(l2=1e-4))

With it, ``net.loss`` reports data loss + penalty and ``net.backward`` adds
the penalty's gradient to each decayed parameter's grad:

    L2:  penalty  l2/2 * ||W||^2      gradient  l2 * W
    L1:  penalty  l1 * sum|W|         gradient  l1 * sign(W)   (0 at W = 0)

By default only parameters named "W" (the weights of Affine, Conv2D and the
binary layers) decay; biases, BatchNorm's gamma and beta do not. ``names``
changes that for every layer; ``layers`` overrides it for single layers (and
their children, for containers), keyed by flat layer name ("0", "2.1") or by
the layer object:

    WeightDecay(l2=1e-4, layers={"0": None,                  # no decay on layer 0
                                 "4": {"l2": 1e-3, "names": ("W", "b")}})

Frozen layers (``trainable = False``) are left out, as they are of the
optimizer's params.
"""
import numpy as np

from cdl._checks import device_c_contiguous, is_device_array
from cdl.backend import kernels_for
from cdl.layers.base import Layer
from cdl.optim.base import check_hyper


class WeightDecay:
    """L2 and/or L1 penalty on the weights of a model's layers (see the module docstring).

    l2 and l1 are the penalties' coefficients (>= 0); names the parameter
    names that decay in every layer; layers maps flat layer names or layer
    objects to None (no decay) or a dict of l2, l1, names overriding them.
    """

    def __init__(self, l2=0.0, l1=0.0, names=("W",), layers=None):
        self.l2 = check_hyper("WeightDecay", "l2", l2, 0)
        self.l1 = check_hyper("WeightDecay", "l1", l1, 0)
        self.names = self._names(names)
        self.layers = {}
        for key, rule in (layers or {}).items():
            if not isinstance(key, (str, Layer)):
                raise ValueError(f"WeightDecay: layers keys are flat layer names like '0' or "
                                 f"'2.1', or Layer objects; got {key!r}")
            if rule is not None:
                if not isinstance(rule, dict) or not set(rule) <= {"l2", "l1", "names"}:
                    raise ValueError(f"WeightDecay: rule for layer {key!r} must be None or a "
                                     f"dict with keys l2, l1, names; got {rule!r}")
                rule = {"l2": check_hyper("WeightDecay", "l2", rule.get("l2", self.l2), 0),
                        "l1": check_hyper("WeightDecay", "l1", rule.get("l1", self.l1), 0),
                        "names": self._names(rule.get("names", self.names))}
            self.layers[key.rstrip(".") if isinstance(key, str) else key] = rule

    @staticmethod
    def _names(names):
        if isinstance(names, str):
            names = (names,)
        names = tuple(names)
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"WeightDecay: names must be parameter names, got {names!r}")
        return names

    def targets(self, layers):
        """Yield (flat name, layer, param name, l2, l1) for each decayed parameter."""
        default = {"l2": self.l2, "l1": self.l1, "names": self.names}
        yield from self._walk(layers, "", default)

    def _walk(self, layers, prefix, inherited):
        for i, layer in enumerate(layers):
            if not layer.trainable:
                continue
            name = f"{prefix}{i}"
            rule = inherited
            for key in (name, layer):
                if key in self.layers:
                    rule = self.layers[key]
            if rule is not None:
                for k in layer.params:
                    if k in rule["names"] and (rule["l2"] or rule["l1"]):
                        yield f"{name}.{k}", layer, k, rule["l2"], rule["l1"]
            if layer.children():
                yield from self._walk(layer.children(), f"{name}.", rule)

    def penalty(self, layers):
        """sum over decayed W of l2/2 ||W||^2 + l1 sum|W| (a float)."""
        total = 0.0
        for _, layer, k, l2, l1 in self.targets(layers):
            w = layer.params[k]
            K = kernels_for(w)
            if l2:
                total += 0.5 * l2 * K.sum_squares(w)
            if l1:
                total += l1 * K.sum_abs(w)
        return total

    def add_grads(self, layers):
        """grads[k] += l2 W + l1 sign(W) for each decayed parameter, in place."""
        for name, layer, k, l2, l1 in self.targets(layers):
            w, g = layer.params[k], layer.grads.get(k)
            if g is None or g.shape != w.shape:
                raise ValueError(f"WeightDecay: layer {name} has no gradient of shape "
                                 f"{w.shape} for {k!r}; call backward after loss")
            if is_device_array(g):
                if not device_c_contiguous(g):
                    raise ValueError(f"WeightDecay: the gradient of {name}.{k} on the GPU "
                                     f"must be C-contiguous")
            elif not g.flags.c_contiguous or not g.flags.writeable:
                g = layer.grads[k] = np.array(g, order="C")
            kernels_for(w, g).weight_decay_grad(g, w, l2, l1)

    def __repr__(self):
        extra = f", layers={self.layers!r}" if self.layers else ""
        return f"WeightDecay(l2={self.l2!r}, l1={self.l1!r}, names={self.names!r}{extra})"
