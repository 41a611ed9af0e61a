"""Allocation and copies on the GPU: twins of cdl.kernels.memory."""
import numpy as np
from numba import cuda

from cdl.cuda._launch import flat, grid


@cuda.jit
def _fill_k(out, value):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = value


@cuda.jit
def _copy_k(a, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = a[i]


def empty(shape, dtype):
    """An uninitialised C-contiguous device array."""
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def zeros(shape, dtype):
    """A C-contiguous device array of zeros."""
    return fill(empty(shape, dtype), 0)


def empty_like(a):
    """An uninitialised C-contiguous device array of a's shape and dtype."""
    return empty(a.shape, a.dtype)


def zeros_like(a):
    """A C-contiguous device array of zeros of a's shape and dtype."""
    return zeros(a.shape, a.dtype)


def fill(out, value):
    """out[...] = value; returns out."""
    if out.size:
        f = flat(out)
        _fill_k[grid(f.size)](f, out.dtype.type(value))
    return out


def copy(a, out):
    """out[...] = a (same shape), cast to out's dtype; returns out."""
    if out.size:
        f = flat(out)
        _copy_k[grid(f.size)](flat(a), f)
    return out


__all__ = ["empty", "zeros", "empty_like", "zeros_like", "fill", "copy"]
