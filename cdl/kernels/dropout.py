"""Noise for the stochastic regularizers (Dropout, DropConnect, GaussianNoise).

The draws come from a ``numpy.random.Generator`` passed in: on the CPU the
kernels draw from it directly (so one generator and seed give the same
masks as ever); the CUDA twins draw one 64-bit seed from it and generate on
the device (see cdl.cuda.dropout). Either way the generator's stream moves
on, so a seeded run is reproducible on its device.
"""
import numpy as np


def dropout_mask(rng, ratio, out):
    """out = keep / (1 - ratio), keep[i] = 1 with probability 1 - ratio, else 0: the
    inverted-dropout mask (E[out] = 1), in out's dtype; returns out.

    keep[i] = (u[i] >= ratio) for u uniform float32 in [0, 1) drawn from rng.
    """
    keep = rng.random(out.shape, dtype=np.float32) >= ratio
    np.multiply(keep, out.dtype.type(1.0 / (1.0 - ratio)), out=out)
    return out


def gaussian_noise(rng, std, out):
    """out = std * e, e ~ N(0, 1) drawn from rng in out's dtype; returns out."""
    rng.standard_normal(out.shape, dtype=out.dtype, out=out)
    out *= std
    return out


def apply_mask(x, mask, out):
    """out = x * mask element-wise (same shapes; out may be x); returns out."""
    return np.multiply(x, mask, out=out)


__all__ = ["dropout_mask", "gaussian_noise", "apply_mask"]
