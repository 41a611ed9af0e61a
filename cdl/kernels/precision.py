"""Mixed-precision kernels: the overflow check of dynamic loss scaling (``cdl.precision``),
and the float16 casts behind ``copy``.

Casts between float16 storage and float32 compute are ``copy`` (``cdl.kernels.memory``:
``K.copy(a, out)`` casts to out's dtype). NumPy converts float16 in software, element by
element; ``half_cast`` does float32 <-> float16 in compiled loops on the bit patterns
instead, with NumPy's results: round to nearest even, +-Inf beyond 65504, subnormals,
signed zeros (checked against NumPy on all 2^32 float32 values; NaN stays NaN, its
payload aside). Numba itself has no float16 type on the CPU, hence the bits.
"""
import math

import numpy as np
from numba import njit

from cdl.kernels.parallel import run_slices

_F16, _F32 = np.dtype(np.float16), np.dtype(np.float32)


@njit(cache=True)
def _all_finite(x):
    for i in range(x.size):
        if not math.isfinite(x[i]):
            return False
    return True


def all_finite(x):
    """True when no element of x (float32 or float64, C-contiguous) is NaN or +-Inf."""
    return bool(_all_finite(x.reshape(x.size)))


@njit(nogil=True, cache=True)
def _to_half(bits, out, a, z):
    # float32 bits -> float16 bits (F. Giesen's float_to_half_fast3_rtne, integers only)
    src, dst = bits[a:z], out[a:z]
    for i in range(src.size):
        u = np.int64(src[i])
        sign = (u >> 16) & 0x8000
        u &= 0x7FFFFFFF
        if u >= 0x47800000:              # |x| >= 2^16, Inf or NaN: Inf, or a quiet NaN
            h = 0x7E00 if u > 0x7F800000 else 0x7C00
        elif u >= 0x38800000:            # a float16 normal (or 65520 and up: Inf)
            # rebias the exponent (127 -> 15) and round the 13 dropped bits half to even
            h = (u - 0x38000000 + 0xFFF + ((u >> 13) & 1)) >> 13
        else:                            # below 2^-14: a float16 subnormal or zero
            s = 126 - (u >> 23)          # x * 2^24 = m >> s, m the 24-bit significand
            if s > 24:                   # below 2^-25 (float32 subnormals too): 0
                h = 0
            else:
                m = (u & 0x7FFFFF) | 0x800000
                h = m >> s
                r, half = m & ((1 << s) - 1), 1 << (s - 1)
                if r > half or (r == half and (h & 1) == 1):
                    h += 1
        dst[i] = np.uint16(sign | h)


@njit(nogil=True, cache=True)
def _from_half(bits, table, out, a, z):
    src, dst = bits[a:z], out[a:z]
    for i in range(src.size):
        dst[i] = table[src[i]]


_TABLE = None  # float32 value of each of the 65536 float16 bit patterns, built on first use


def half_cast(a, out):
    """out[...] = a for C-contiguous NumPy arrays of one shape, float32 -> float16 or
    float16 -> float32, on cdl's worker threads; False (nothing done) for any other pair."""
    global _TABLE
    if not isinstance(a, np.ndarray) or (a.dtype != _F16 and out.dtype != _F16):
        return False  # the common case first: two comparisons
    if (a.dtype, out.dtype) not in ((_F32, _F16), (_F16, _F32)) or a.shape != out.shape \
            or not (a.flags.c_contiguous and out.flags.c_contiguous) or not a.size:
        return False
    n = a.size
    if a.dtype == _F32:
        src, dst = a.reshape(n).view(np.uint32), out.reshape(n).view(np.uint16)
        run_slices(lambda i, j: _to_half(src, dst, i, j), n, work=n)
    else:
        if _TABLE is None:
            _TABLE = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
        src, dst = a.reshape(n).view(np.uint16), out.reshape(n)
        run_slices(lambda i, j: _from_half(src, _TABLE, dst, i, j), n, work=n)
    return True


__all__ = ["all_finite"]
