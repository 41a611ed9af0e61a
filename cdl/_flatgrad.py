"""The flat gradient buffer of a Sequential: every trainable gradient in one contiguous array.

One 1-D array per dtype (a model has one dtype, so in practice one array)
holds every gradient of the trainable layers, in the order of
``Sequential.grads`` (flat-name order); each layer's ``grads[k]`` is a view
of its slice. So one collective (an MPI allreduce, ``cdl.distributed``)
covers every gradient, and a slice of the buffer covers the gradients of
consecutive layers (a bucket, started while backward still runs on the
layers before it).

Layers fill their grads as they always have (most rebind ``grads[k]`` to a
fresh array in ``backward``); after each top-level layer's backward,
``gather(i)`` copies what that layer (and its children) produced into the
views and rebinds ``grads[k]`` to them, so the buffer stays the storage. A
layer that writes into the array it finds in ``grads[k]`` writes into the
view and nothing is copied. The copy is one pass over the gradients per
step (a few hundred kB for DeepConvNet: microseconds beside a step).

The layout is keyed on the trainable parameters (layer, name, shape, dtype,
array type): ``replace_head``, ``astype``, ``to_device`` or flipping a
layer's ``trainable`` give a new layout at the next ``backward``.
"""
import numpy as np

from cdl.backend import kernels_for


def signature(layers):
    """What the layout depends on: (layer id, name, shape, dtype, array type) per trainable
    parameter, in flat-name order, with each top-level layer's index."""
    return tuple((i, id(layer), k, p.shape, p.dtype.str, type(p))
                 for i, layer in _trainable(layers) for k, p in layer.params.items())


def _trainable(layers):
    """(top-level index, layer) for every trainable layer, depth first, as ``walk`` orders."""
    def below(layer, i):
        for child in layer.children():
            if child.trainable:
                yield i, child
                yield from below(child, i)
    for i, top in enumerate(layers):
        if top.trainable:
            yield i, top
            yield from below(top, i)


class _Entry:
    __slots__ = ("top", "layer", "key", "buffer", "start", "stop", "view")

    def __init__(self, top, layer, key, buffer, start, stop, view):
        self.top, self.layer, self.key = top, layer, key
        self.buffer, self.start, self.stop, self.view = buffer, start, stop, view


class GradBuffer:
    """The layout: ``buffers`` (1-D arrays, one per dtype), ``entries`` (one per gradient:
    top-level layer index ``top``, ``layer``, ``key``, ``buffer`` index, ``start``/``stop`` in
    that buffer, and the ``view``), ``by_top`` (top-level index -> its entries)."""

    def __init__(self, layers, sig=None):
        self.signature = signature(layers) if sig is None else sig
        params = [(i, layer, k, p) for i, layer in _trainable(layers)
                  for k, p in layer.params.items()]
        dtypes = []
        for _, _, _, p in params:
            if p.dtype not in dtypes:
                dtypes.append(p.dtype)
        sizes = [sum(p.size for *_, p in params if p.dtype == dt) for dt in dtypes]
        self.buffers = []
        for dt, n in zip(dtypes, sizes):
            like = next(p for *_, p in params if p.dtype == dt)
            self.buffers.append(kernels_for(like).zeros((n,), dt))
        self.entries, self.by_top = [], {}
        offsets = [0] * len(dtypes)
        for i, layer, k, p in params:
            b = dtypes.index(p.dtype)
            start = offsets[b]
            stop = offsets[b] = start + p.size
            view = self.buffers[b][start:stop].reshape(p.shape)
            g = layer.grads.get(k)
            if g is not None and g.shape == p.shape:
                kernels_for(g, view).copy(g, view)
            layer.grads[k] = view
            e = _Entry(i, layer, k, b, start, stop, view)
            self.entries.append(e)
            self.by_top.setdefault(i, []).append(e)

    def gather(self, top):
        """Copy the grads top-level layer ``top`` just computed into their views, and point
        ``grads[k]`` back at the views."""
        for e in self.by_top.get(top, ()):
            grads = e.layer.grads
            g = grads.get(e.key)
            if g is e.view or g is None:
                continue
            if type(g) is np.ndarray and type(e.view) is np.ndarray:
                e.view[...] = g
            else:
                kernels_for(g, e.view).copy(g, e.view)
            grads[e.key] = e.view

    @property
    def nbytes(self):
        return sum(b.nbytes for b in self.buffers)


def layout(model):
    """model's GradBuffer, built anew when its trainable parameters changed."""
    sig = signature(model.layers)
    buf = model._grad_buffer
    if buf is None or buf.signature != sig:
        buf = model._grad_buffer = GradBuffer(model.layers, sig)
    return buf
