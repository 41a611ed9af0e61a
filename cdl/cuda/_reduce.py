"""Block reductions in shared memory, shared by the twins that sum (norm, optim, loss).

A kernel that reduces gives each thread a float64 accumulator over a strided
share of the values, stores it in ``s[t]`` of a ``cuda.shared.array(MAX_THREADS,
float64)``, and calls ``tree_sum(s, t, nt)`` (nt = threads in the block): a
barrier, then a tree of pairwise sums, after which s[0] holds the block's
sum. Launch such kernels with ``block_threads(n)`` threads. No atomics.
"""
from numba import cuda

MAX_THREADS = 256  # threads per reducing block (the shared arrays' size)


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
