"""cdl.cuda._minmax: min2 and max2 give Python's min(a, b) and max(a, b), NaN included.
(That they compile for a real GPU is tests/cuda/test_compile.py's job.)"""
import math

import numpy as np
from numba import cuda

from cdl.cuda._minmax import max2, min2


@cuda.jit
def _both_k(a, b, lo, hi):
    i = cuda.grid(1)
    if i < a.size:
        lo[i] = min2(a[i], b[i])
        hi[i] = max2(a[i], b[i])


def test_min2_max2_are_pythons():
    nan = math.nan
    pairs = [(1.0, 2.0), (2.0, 1.0), (-0.0, 0.0), (0.0, -0.0), (nan, 1.0), (1.0, nan), (3.0, 3.0)]
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    lo, hi = cuda.device_array(len(pairs)), cuda.device_array(len(pairs))
    _both_k[1, 32](cuda.to_device(a), cuda.to_device(b), lo, hi)
    want_lo = np.array([min(x, y) for x, y in pairs])
    want_hi = np.array([max(x, y) for x, y in pairs])
    # compare bit patterns: the sign of zero and NaN positions must match too
    np.testing.assert_array_equal(lo.copy_to_host().view(np.int64), want_lo.view(np.int64))
    np.testing.assert_array_equal(hi.copy_to_host().view(np.int64), want_hi.view(np.int64))
