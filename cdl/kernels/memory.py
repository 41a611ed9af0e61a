"""Allocation and copies on the host: the CPU side of the backend's memory calls.

Layers and optimizers allocate through ``kernels_for(x)`` (``K.empty``,
``K.zeros_like``, ...) so that the same code allocates device memory when x
lives on the GPU (``cdl.cuda.memory`` holds the twins).
"""
import numpy as np

from cdl.kernels.precision import half_cast


def empty(shape, dtype):
    """An uninitialised C-contiguous array."""
    return np.empty(shape, dtype=dtype)


def zeros(shape, dtype):
    """A C-contiguous array of zeros."""
    return np.zeros(shape, dtype=dtype)


def empty_like(a):
    """An uninitialised C-contiguous array of a's shape and dtype."""
    return np.empty(a.shape, dtype=a.dtype)


def zeros_like(a):
    """A C-contiguous array of zeros of a's shape and dtype."""
    return np.zeros(a.shape, dtype=a.dtype)


def fill(out, value):
    """out[...] = value; returns out."""
    out.fill(value)
    return out


def copy(a, out):
    """out[...] = a (same shape), cast to out's dtype; returns out."""
    if half_cast(a, out):  # float32 <-> float16: NumPy's casts are 4-10x slower (software)
        return out
    np.copyto(out, a, casting="same_kind")
    return out


__all__ = ["empty", "zeros", "empty_like", "zeros_like", "fill", "copy"]
