"""Two-argument min and max for CUDA kernels.

The builtins ``min(a, b)`` and ``max(a, b)`` do not compile for CUDA in Numba
0.66-0.68 (numba/numba#10753: TypeError "Signature mismatch"); the simulator
runs kernels as Python, so only a real GPU (or ``numba.cuda.compile_ptx``)
shows it. These give the builtins' results, NaN included: the first argument
unless the second compares smaller (min) or larger (max).
"""
from numba import cuda


@cuda.jit(device=True)
def min2(a, b):
    """min(a, b) as Python computes it."""
    return b if b < a else a


@cuda.jit(device=True)
def max2(a, b):
    """max(a, b) as Python computes it."""
    return b if b > a else a
