"""Launch geometry shared by the twins: one thread per element, grid-stride loops."""
THREADS = 256        # threads per block
MAX_BLOCKS = 4096    # grid-stride loops cover the rest


def grid(n):
    """(blocks, threads) for n elements, at least one block."""
    return max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS)), THREADS


def flat(a):
    """A 1-D view of a C-contiguous device array (no copy)."""
    return a.reshape(a.size) if a.ndim != 1 else a
