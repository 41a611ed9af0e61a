"""Mixed-precision kernels: the overflow check of dynamic loss scaling (``cdl.precision``).

Casts between float16 storage and float32 compute are ``copy`` (``cdl.kernels.memory``:
``K.copy(a, out)`` casts to out's dtype; float32 -> float16 rounds to nearest and gives
+-Inf above 65504).
"""
import math

from numba import njit


@njit(cache=True)
def _all_finite(x):
    for i in range(x.size):
        if not math.isfinite(x[i]):
            return False
    return True


def all_finite(x):
    """True when no element of x (float32 or float64, C-contiguous) is NaN or +-Inf."""
    return bool(_all_finite(x.reshape(x.size)))


__all__ = ["all_finite"]
