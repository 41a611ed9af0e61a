"""Random numbers on the device, shared by the twins that draw (dropout, augment, binarize).

A kernel draws one seed from the generator (``rng.integers(2**63)``, so the
generator moves on and a seeded run repeats itself) and generates on the
device with numba.cuda.random's xoroshiro128+: one generator state per
thread, for at most _RNG_BLOCKS blocks (grid-stride loops cover the rest),
state i seeded with the i-th output of SplitMix64 from that seed (the
seeding Vigna recommends for xoroshiro, done on the device rather than by
jumping ahead on the host). The same seed gives the same numbers on the
device, other numbers than the CPU's stream.

numba.cuda.random is imported here only: under the simulator it decorates its
functions with nopython=False (object mode on NumPy scalars), which Numba warns
about as deprecated at import.
"""
import warnings

import numpy as np
from numba import cuda, uint64

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from numba.cuda.random import (init_xoroshiro128p_state, xoroshiro128p_dtype,
                                   xoroshiro128p_normal_float32, xoroshiro128p_normal_float64,
                                   xoroshiro128p_uniform_float32, xoroshiro128p_uniform_float64)

from cdl.cuda._launch import grid

_RNG_BLOCKS = 512  # most blocks of a generating kernel: 512 * 256 states of 16 bytes


@cuda.jit
def _seed_k(states, seed):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, states.size, step):
        # SplitMix64's i-th state: seed + i * golden gamma (mod 2^64); init mixes it
        init_xoroshiro128p_state(states, i, seed + uint64(i) * uint64(0x9E3779B97F4A7C15))


def generators(rng, n):
    """(states, blocks, threads) for a grid-stride kernel over n elements."""
    seed = np.uint64(rng.integers(2**63))
    blocks, threads = grid(n)
    blocks = min(blocks, _RNG_BLOCKS)
    states = cuda.device_array(blocks * threads, dtype=xoroshiro128p_dtype)
    _seed_k[grid(states.size)](states, seed)
    return states, blocks, threads


__all__ = ["generators", "xoroshiro128p_dtype", "xoroshiro128p_normal_float32",
           "xoroshiro128p_normal_float64", "xoroshiro128p_uniform_float32",
           "xoroshiro128p_uniform_float64"]
