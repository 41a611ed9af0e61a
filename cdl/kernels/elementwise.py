"""Element-wise array arithmetic and channel copies for the container layers.

Residual adds its two paths (``add``); Concat writes each branch's output
into its channels of the joined array (``copy_channels``) and hands each
branch its channels of dout back (``slice_channels``). Channels are axis 1
of C-contiguous (N, C, ...) arrays; ``scale`` multiplies by a number (a
loss's dout). Outputs may have a wider dtype than the inputs (float64 out of
float32 and float64 operands); ``out`` may be one of the inputs.
"""
import numpy as np


def add(a, b, out):
    """out = a + b element-wise (same shapes); returns out."""
    return np.add(a, b, out=out)


def scale(x, alpha, out):
    """out = alpha * x element-wise, alpha cast to out's dtype; returns out."""
    return np.multiply(x, out.dtype.type(alpha), out=out)


def copy_channels(x, c0, out):
    """out[:, c0:c0 + C] = x for x (N, C, ...) and out (N, C_out, ...); returns out."""
    out[:, c0:c0 + x.shape[1]] = x
    return out


def slice_channels(x, c0, out):
    """out = x[:, c0:c0 + C] for x (N, C_in, ...) and out (N, C, ...); returns out."""
    np.copyto(out, x[:, c0:c0 + out.shape[1]], casting="same_kind")
    return out


__all__ = ["add", "scale", "copy_channels", "slice_channels"]
