"""Noise on the GPU: twins of cdl.kernels.dropout.

Generated on the device from one seed drawn from the generator (see
cdl.cuda._random). The masks follow the CPU rules (keep where a uniform
float32 u >= ratio, scaled by 1/(1 - ratio)), not the CPU's stream: the same
seed gives the same mask on the device, another mask than the CPU.
"""
import numpy as np
from numba import cuda

from cdl.cuda._launch import flat, grid
from cdl.cuda._random import (generators, xoroshiro128p_normal_float32,
                              xoroshiro128p_normal_float64, xoroshiro128p_uniform_float32)


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
        states, blocks, threads = generators(rng, out.size)
        _dropout_mask_k[blocks, threads](states, np.float32(ratio),
                                         out.dtype.type(1.0 / (1.0 - ratio)), flat(out))
    return out


def gaussian_noise(rng, std, out):
    """out = std * e, e ~ N(0, 1) generated in out's dtype; returns out."""
    if out.size:
        states, blocks, threads = generators(rng, out.size)
        kernel = _normal32_k if out.dtype == np.float32 else _normal64_k
        kernel[blocks, threads](states, out.dtype.type(std), flat(out))
    return out


def apply_mask(x, mask, out):
    """out = x * mask element-wise (same shapes; out may be x); returns out."""
    if out.size:
        _apply_mask_k[grid(out.size)](flat(x), flat(mask), flat(out))
    return out


__all__ = ["dropout_mask", "gaussian_noise", "apply_mask"]
