"""Mixed-precision kernels (``cdl.precision``): the overflow check of dynamic loss scaling,
rounding to float16 in one pass, and the float16 casts behind ``copy``.

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
def _half_bits(u):
    """float16 bits of the float32 with bits u (F. Giesen's float_to_half_fast3_rtne, in
    integers only)."""
    u = np.int64(u)
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
    return np.uint16(sign | h)


@njit(nogil=True, cache=True)
def _to_half(bits, out, a, z):
    src, dst = bits[a:z], out[a:z]
    for i in range(src.size):
        dst[i] = _half_bits(src[i])


@njit(nogil=True, cache=True)
def _round_half(bits, table, out, a, z):
    src, dst = bits[a:z], out[a:z]
    for i in range(src.size):
        dst[i] = table[_half_bits(src[i])]


@njit(nogil=True, cache=True)
def _round_half_keep(bits, table, out, half, a, z):
    src, dst, hs = bits[a:z], out[a:z], half[a:z]
    for i in range(src.size):
        h = _half_bits(src[i])
        hs[i] = h
        dst[i] = table[h]


@njit(nogil=True, cache=True)
def _from_half(bits, table, out, a, z):
    src, dst = bits[a:z], out[a:z]
    for i in range(src.size):
        dst[i] = table[src[i]]


_TABLE = None  # float32 value of each of the 65536 float16 bit patterns, built on first use


def _table():
    global _TABLE
    if _TABLE is None:
        _TABLE = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    return _TABLE


def round_float16(x, out, half):
    """out = x rounded to the nearest float16 value, in float32 (+-Inf beyond 65504; out may
    be x), and half = those values as float16 unless half is None; x, out float32 and half
    C-contiguous, one shape. Returns out. Mixed precision's float16 store in one pass."""
    n = x.size
    src, dst = x.reshape(n).view(np.uint32), out.reshape(n)
    table = _table()
    if half is None:
        run_slices(lambda i, j: _round_half(src, table, dst, i, j), n, work=n)
    else:
        hs = half.reshape(n).view(np.uint16)
        run_slices(lambda i, j: _round_half_keep(src, table, dst, hs, i, j), n, work=n)
    return out


def half_cast(a, out):
    """out[...] = a for C-contiguous NumPy arrays of one shape, float32 -> float16 or
    float16 -> float32, on cdl's worker threads; False (nothing done) for any other pair."""
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
        src, dst, table = a.reshape(n).view(np.uint16), out.reshape(n), _table()
        run_slices(lambda i, j: _from_half(src, table, dst, i, j), n, work=n)
    return True


__all__ = ["all_finite", "round_float16"]
