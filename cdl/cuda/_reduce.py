"""Block reductions in shared memory, shared by the twins that sum (norm, optim, loss).

A kernel that reduces gives each thread a float64 accumulator over a strided
share of the values, stores it in ``s[t]`` of a ``cuda.shared.array(MAX_THREADS,
float64)``, and calls ``tree_sum(s, t, nt)`` (nt = threads in the block): a
barrier, then a tree of pairwise sums, after which s[0] holds the block's
sum. Launch such kernels with ``block_threads(n)`` threads. No atomics.

``total(x, mode)`` sums a whole array that way in two passes: each block sums
its grid-stride share into a partial sum, one more block adds the partial sums
up, and that one float is all that comes back to the host.
"""
import numpy as np
from numba import cuda, float64

MAX_THREADS = 256   # threads per reducing block (the shared arrays' size)
_TOTAL_BLOCKS = 256  # most partial sums total() adds up in its second pass
PLAIN, SQUARES, ABS = 0, 1, 2  # what total() sums: x, x*x or |x|


def block_threads(n):
    """Threads per block for a reduction over n values: a power of two in [32, MAX_THREADS]."""
    t = 32
    while t < MAX_THREADS and t < n:
        t *= 2
    return t


@cuda.jit(device=True)
def tree_sum(s, t, nt):
    """s[0] = s[0] + ... + s[nt-1], called by every thread t of the block (any nt)."""
    cuda.syncthreads()
    width = nt
    while width > 1:
        half = (width + 1) // 2
        if t + half < width:
            s[t] += s[t + half]
        cuda.syncthreads()
        width = half


@cuda.jit(device=True)
def tree_sum2(s1, s2, t, nt):
    """tree_sum of two shared arrays at once (one barrier per level)."""
    cuda.syncthreads()
    width = nt
    while width > 1:
        half = (width + 1) // 2
        if t + half < width:
            s1[t] += s1[t + half]
            s2[t] += s2[t + half]
        cuda.syncthreads()
        width = half


@cuda.jit
def _total_k(x, mode, partial):
    s = cuda.shared.array(MAX_THREADS, float64)
    t = cuda.threadIdx.x
    acc = float64(0.0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = float64(x[i])
        if mode == SQUARES:
            acc += v * v
        elif mode == ABS:
            acc += abs(v)
        else:
            acc += v
    s[t] = acc
    tree_sum(s, t, cuda.blockDim.x)
    if t == 0:
        partial[cuda.blockIdx.x] = s[0]


def total(x, mode=PLAIN):
    """The sum of x (PLAIN), x*x (SQUARES) or |x| (ABS) over a 1-D device array, in float64,
    as a Python float (0.0 for no elements)."""
    if x.size == 0:
        return 0.0
    threads = block_threads(x.size)
    blocks = min(_TOTAL_BLOCKS, (x.size + threads - 1) // threads)
    partial = cuda.device_array(blocks, dtype=np.float64)
    _total_k[blocks, threads](x, mode, partial)
    if blocks > 1:
        out = cuda.device_array(1, dtype=np.float64)
        _total_k[1, block_threads(blocks)](partial, PLAIN, out)
        partial = out
    return float(partial.copy_to_host()[0])
