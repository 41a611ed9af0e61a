"""Averaging gradients over the ranks: bucketed, overlapped with backward, optionally in float16.

``GradSync`` hangs on a Sequential's ``grad_hook`` (``cdl._flatgrad``): the
flat gradient buffer is cut into buckets of about ``bucket_bytes``, from the
last layer's gradients down (the order backward produces them), and each
bucket's non-blocking allreduce (``MPI_Iallreduce``) starts as soon as
backward has passed its lowest layer, while backward goes on with the layers
below (PyTorch DDP's scheme, Li et al. 2020). Between layers the pending
requests are tested, which lets MPI progress them; at the end of backward
everything is waited for. Each rank scales its gradients by its share of
the global batch (n_rank / n_global) before the sum, so the result is the
gradient of the global batch's mean loss, whatever the ranks' batch sizes.

``compression="float16"`` sends each bucket as float16 (half the bytes;
gradients keep about 3 significant digits) and writes the sum back in the
parameters' dtype; without it the sum is taken in the parameters' own dtype.
Device buffers (the GPU path) are staged through the host, as the MPI wheels
are not CUDA-aware.
"""
import time

import numpy as np

from cdl import _flatgrad
from cdl._checks import is_device_array

# 256 KiB: DeepConvNet's 0.5 MB of gradients in two buckets, the first started before the
# early convolutions' backward (the costly part) runs; ResNet-20's 1.1 MB in five
DEFAULT_BUCKET_BYTES = 1 << 18
_COMPRESSIONS = (None, "float16")


def _check_compression(who, compression):
    if compression not in _COMPRESSIONS:
        raise ValueError(f"{who}: compression must be None or 'float16', got {compression!r}")
    return compression


class _Bucket:
    __slots__ = ("buffer", "start", "stop", "first", "send", "request")

    def __init__(self, buffer, start, stop, first):
        self.buffer, self.start, self.stop, self.first = buffer, start, stop, first
        self.send, self.request = None, None


def buckets(layout, bucket_bytes):
    """The buckets of a GradBuffer layout: contiguous [start, stop) ranges of its buffers,
    cut at gradient boundaries from the end once they reach bucket_bytes, each with
    ``first``, the lowest top-level layer whose gradients it holds (it is complete once
    backward has passed that layer)."""
    out = []
    for b, buf in enumerate(layout.buffers):
        entries = [e for e in layout.entries if e.buffer == b]
        stop, first, size = None, None, 0
        for e in reversed(entries):
            if stop is None:
                stop, size = e.stop, 0
            size += (e.stop - e.start) * buf.dtype.itemsize
            first = e.top
            if size >= bucket_bytes:
                out.append(_Bucket(b, e.start, stop, first))
                stop = None
        if stop is not None:
            out.append(_Bucket(b, entries[0].start, stop, first))
    return out


class GradSync:
    """Averages a model's gradients over ``comm``'s ranks during backward (see the module
    docstring). ``attach(model)`` hangs it on ``model.grad_hook``; ``weight`` is this rank's
    share of the global batch for the next backward (default 1 / size).

    bucket_bytes is the buckets' size and compression None or "float16" (see the module
    docstring). overlap=False starts every bucket only when backward has finished (to
    measure what the overlap saves). ``wait_seconds`` and ``steps`` add up the time spent waiting for
    the allreduces at the end of backward, and the steps.
    """

    def __init__(self, comm, bucket_bytes=DEFAULT_BUCKET_BYTES, compression=None,
                 overlap=True):
        self.comm = comm
        self.bucket_bytes = int(bucket_bytes)
        self.compression = _check_compression("GradSync", compression)
        self.overlap = bool(overlap)
        self.weight = 1.0 / comm.size
        self._layout, self._buckets, self._by_first = None, [], {}
        self.wait_seconds, self.steps = 0.0, 0

    def attach(self, model):
        """Hang this sync on ``model.grad_hook``, so model's backward averages its gradients;
        returns self."""
        model.grad_hook = self
        return self

    def detach(self, model):
        """Take this sync off ``model.grad_hook`` (no change when another hook is there)."""
        if model.grad_hook is self:
            model.grad_hook = None

    def __call__(self, layout, top):
        if layout is not self._layout:
            self._layout = layout
            self._buckets = buckets(layout, self.bucket_bytes)
            self._by_first = {}
            for bk in self._buckets:
                self._by_first.setdefault(bk.first, []).append(bk)
        if top is not None:
            if self.overlap:
                for bk in self._by_first.get(top, ()):
                    self._start(layout, bk)
                self._progress()
            return
        for bk in self._buckets:  # the rest (all of them without overlap; frozen tops)
            if bk.request is None:
                self._start(layout, bk)
        t0 = time.perf_counter()
        requests = [bk.request for bk in self._buckets]
        if requests:
            requests[0].Waitall(requests)
        self.wait_seconds += time.perf_counter() - t0
        self.steps += 1
        for bk in self._buckets:
            self._finish(layout, bk)
        self.weight = 1.0 / self.comm.size

    def reduce(self, model):
        """Average model's gradients now, all buckets at once (for a backward that does not
        call ``grad_hook``, such as mixed precision's)."""
        layout = _flatgrad.layout(model)
        for top in range(len(model.layers)):
            layout.gather(top)
        self(layout, None)

    def _progress(self):
        pending = [bk.request for bk in self._buckets if bk.request is not None]
        if pending:
            pending[0].Testall(pending)  # lets MPI move the messages on (no progress thread)

    def _start(self, layout, bk):
        view = layout.buffers[bk.buffer][bk.start:bk.stop]
        w = self.weight
        if is_device_array(view) or self.compression is not None:
            host = view.copy_to_host() if is_device_array(view) else view
            dtype = np.float16 if self.compression == "float16" else host.dtype
            send = np.multiply(host, w, dtype=dtype, casting="unsafe") if w != 1.0 \
                else host.astype(dtype)
        else:
            send = view
            if w != 1.0:
                np.multiply(view, view.dtype.type(w), out=view)
        bk.send = send
        bk.request = self.comm.iallreduce(send)

    def _finish(self, layout, bk):
        view = layout.buffers[bk.buffer][bk.start:bk.stop]
        if bk.send is not view:
            if is_device_array(view):
                view.copy_to_device(bk.send.astype(view.dtype, copy=False))
            else:
                view[...] = bk.send
        bk.send, bk.request = None, None


def _views_of_one_buffer(grads):
    """The 1-D array every array of grads is a view of, back to back in order, or None."""
    arrays = list(grads.values())
    if not arrays or not all(isinstance(g, np.ndarray) for g in arrays):
        return None
    base = arrays[0].base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    pos = base.__array_interface__["data"][0]
    for g in arrays:
        if g.base is not base or g.dtype != base.dtype or not g.flags.c_contiguous \
                or g.__array_interface__["data"][0] != pos:
            return None
        pos += g.nbytes
    if pos != base.__array_interface__["data"][0] + base.nbytes:
        return None
    return base


class AllReduceOptimizer:
    """Wraps an optimizer: gradients are averaged over the ranks before each update
    (Chainer-MN's ``create_multi_node_optimizer``).

        comm = cdl.distributed.init()
        opt = cdl.distributed.AllReduceOptimizer(optim.Adam(lr=1e-3), comm)

    In a loop of your own, ``opt.update(net.params, net.grads)`` allreduces the model's
    flat gradient buffer in one call (other gradient dicts are packed into one array
    first). Rank 0's parameters must be everyone's: call ``opt.broadcast(net)`` before
    the first step, or the first ``update`` broadcasts them instead of updating (as
    Chainer-MN does: the gradients of that step came from different weights). Given to a
    ``Trainer``, the trainer broadcasts, and averages the gradients during backward in
    buckets (``GradSync``).

    Everything else (lr, state_dict, ...) is the wrapped optimizer's, so schedules and
    checkpoints see the plain optimizer (a checkpoint resumes on any number of ranks).
    compression (None or "float16") and bucket_bytes go to the GradSync (see the module
    docstring).
    """

    def __init__(self, optimizer, comm, compression=None, bucket_bytes=DEFAULT_BUCKET_BYTES):
        if not callable(getattr(optimizer, "update", None)):
            raise ValueError(f"AllReduceOptimizer: wraps an optimizer with update(params, "
                             f"grads), got {type(optimizer).__name__}")
        if not hasattr(comm, "rank") or not hasattr(comm, "mpi"):
            raise ValueError(f"AllReduceOptimizer: comm must come from cdl.distributed.init(), "
                             f"got {type(comm).__name__}")
        vars(self).update(optimizer=optimizer, comm=comm,
                          compression=_check_compression("AllReduceOptimizer", compression),
                          bucket_bytes=int(bucket_bytes), needs_broadcast=True)

    def __getattr__(self, name):
        return getattr(vars(self)["optimizer"], name)

    def __setattr__(self, name, value):
        if name in vars(self):
            vars(self)[name] = value
        else:
            setattr(self.optimizer, name, value)  # lr from schedules, state from checkpoints

    def __repr__(self):
        return f"AllReduceOptimizer({self.optimizer!r}, size={self.comm.size})"

    def broadcast(self, model_or_params):
        """Rank 0's parameters (a Sequential: its parameters and buffers) to every rank."""
        if hasattr(model_or_params, "state"):
            self.comm.broadcast_model(model_or_params)
        else:
            self.comm.broadcast_arrays(model_or_params.values())
        vars(self)["needs_broadcast"] = False

    def allreduce_grads(self, grads):
        """Average grads over the ranks, in place (their own dtype, or float16 on the wire)."""
        if self.comm.size == 1:
            return grads
        base = _views_of_one_buffer(grads)
        if base is not None and self.compression is None:
            self.comm.mpi.Allreduce(_mpi_in_place(), base)
            np.multiply(base, base.dtype.type(1.0 / self.comm.size), out=base)
            return grads
        from cdl import cuda
        hosts = [np.ascontiguousarray(cuda.to_host(g)) for g in grads.values()]
        dtype = np.dtype(np.float16 if self.compression == "float16"
                         else np.result_type(*hosts))
        packed = np.concatenate([h.ravel() for h in hosts]).astype(dtype)
        packed *= dtype.type(1.0 / self.comm.size)
        self.comm.mpi.Allreduce(_mpi_in_place(), packed)
        offset = 0
        for g, h in zip(grads.values(), hosts):
            part = packed[offset:offset + h.size].reshape(h.shape).astype(h.dtype)
            offset += h.size
            if is_device_array(g):
                g.copy_to_device(part)
            else:
                g[...] = part
        return grads

    def update(self, params, grads):
        """Average grads over the ranks, then the wrapped optimizer's update (the first call
        broadcasts rank 0's params instead, unless ``broadcast`` ran)."""
        if self.needs_broadcast and self.comm.size > 1:
            self.broadcast(params)
            return
        self.allreduce_grads(grads)
        self.optimizer.update(params, grads)


def _mpi_in_place():
    from cdl.distributed.comm import _mpi
    return _mpi().IN_PLACE


def sync_batchnorm(model, comm):
    """Make every BatchNorm of model normalize with the statistics of the global batch
    (all ranks' samples; SyncBatchNorm), in training; returns model. ``comm=None`` turns
    it back to per-rank statistics (the default)."""
    from cdl.layers.norm import BatchNorm
    from cdl.model import walk
    for _, layer in walk(model.layers):
        if isinstance(layer, BatchNorm):
            layer.comm = comm
    return model

