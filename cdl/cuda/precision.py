"""Mixed-precision kernels on the GPU: twins of cdl.kernels.precision."""
import math

import numpy as np
from numba import cuda

from cdl.cuda._launch import flat, grid
from cdl.cuda.memory import empty, fill


@cuda.jit
def _all_finite_k(x, flag):
    # every thread that finds a NaN/Inf writes the same 0: a benign race, no atomics needed
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        v = x[i]
        if math.isinf(v) or math.isnan(v):
            flag[0] = 0


def all_finite(x):
    """True when no element of x (float32 or float64, C-contiguous) is NaN or +-Inf; one int
    comes back to the host."""
    flag = fill(empty((1,), np.int32), 1)
    if x.size:
        _all_finite_k[grid(x.size)](flat(x), flag)
    return bool(flag.copy_to_host()[0])


@cuda.jit
def _round_float16_k(x, out, half):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        half[i] = x[i]      # the conversion rounds to nearest even, Inf past 65504
        out[i] = half[i]


def round_float16(x, out, half):
    """out = x rounded to the nearest float16 value, in float32 (+-Inf beyond 65504; out may
    be x), and half = those values as float16 unless half is None (then a scratch array)."""
    if half is None:
        half = empty(x.shape, np.float16)
    if x.size:
        _round_float16_k[grid(x.size)](flat(x), flat(out), flat(half))
    return out


__all__ = ["all_finite", "round_float16"]
