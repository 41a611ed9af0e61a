"""Noise on the GPU: twins of cdl.kernels.dropout.

A kernel draws one seed from the generator (``rng.integers(2**63)``, so the
generator moves on and a seeded run repeats itself) and generates on the
device with numba.cuda.random's xoroshiro128+: one generator state per
thread, for at most _RNG_BLOCKS blocks (grid-stride loops cover the rest),
state i seeded with the i-th output of SplitMix64 from that seed (the
seeding Vigna recommends for xoroshiro, done on the device rather than by
jumping ahead on the host). The masks follow the CPU rules (keep where a
uniform float32 u >= ratio, scaled by 1/(1 - ratio)), not the CPU's stream:
the same seed gives the same mask on the device, another mask than the CPU.
"""
import warnings

import numpy as np
from numba import cuda, uint64

with warnings.catch_warnings():
    # Under the simulator numba.cuda.random decorates its functions with nopython=False
    # (object mode on NumPy scalars), which Numba warns about as deprecated at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from numba.cuda.random import (init_xoroshiro128p_state, xoroshiro128p_dtype,
                                   xoroshiro128p_normal_float32, xoroshiro128p_normal_float64,
                                   xoroshiro128p_uniform_float32)

from cdl.cuda._launch import flat, grid

_RNG_BLOCKS = 512  # most blocks of a generating kernel: 512 * 256 states of 16 bytes


@cuda.jit
def _seed_k(states, seed):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, states.size, step):
        # SplitMix64's i-th state: seed + i * golden gamma (mod 2^64); init mixes it
        init_xoroshiro128p_state(states, i, seed + uint64(i) * uint64(0x9E3779B97F4A7C15))


def _generators(rng, n):
    """(states, blocks, threads) for a grid-stride kernel over n elements."""
    seed = np.uint64(rng.integers(2**63))
    blocks, threads = grid(n)
    blocks = min(blocks, _RNG_BLOCKS)
    states = cuda.device_array(blocks * threads, dtype=xoroshiro128p_dtype)
    _seed_k[grid(states.size)](states, seed)
    return states, blocks, threads


@cuda.jit
def _dropout_mask_k(states, ratio, keep, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        u = xoroshiro128p_uniform_float32(states, start)
        out[i] = keep if u >= ratio else keep - keep


@cuda.jit
def _normal32_k(states, std, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = xoroshiro128p_normal_float32(states, start) * std


@cuda.jit
def _normal64_k(states, std, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = xoroshiro128p_normal_float64(states, start) * std


@cuda.jit
def _apply_mask_k(x, mask, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = x[i] * mask[i]


def dropout_mask(rng, ratio, out):
    """out = keep / (1 - ratio), keep[i] = 1 with probability 1 - ratio, else 0
    (keep where a uniform float32 u >= ratio); returns out."""
    if out.size:
        states, blocks, threads = _generators(rng, out.size)
        _dropout_mask_k[blocks, threads](states, np.float32(ratio),
                                         out.dtype.type(1.0 / (1.0 - ratio)), flat(out))
    return out


def gaussian_noise(rng, std, out):
    """out = std * e, e ~ N(0, 1) generated in out's dtype; returns out."""
    if out.size:
        states, blocks, threads = _generators(rng, out.size)
        kernel = _normal32_k if out.dtype == np.float32 else _normal64_k
        kernel[blocks, threads](states, out.dtype.type(std), flat(out))
    return out


def apply_mask(x, mask, out):
    """out = x * mask element-wise (same shapes; out may be x); returns out."""
    if out.size:
        _apply_mask_k[grid(out.size)](flat(x), flat(mask), flat(out))
    return out


__all__ = ["dropout_mask", "gaussian_noise", "apply_mask"]
