"""Element-wise arithmetic and channel copies on the GPU: twins of cdl.kernels.elementwise.

One thread per output element. Channel copies see (N, C, ...) arrays as
flat rows: sample n's channels c0..c0+C-1 are the contiguous run
[n * C_out * R + c0 * R, + C * R) of the joined array, R the spatial size.
"""
from numba import cuda

from cdl.cuda._launch import flat, grid


@cuda.jit
def _add_k(a, b, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = a[i] + b[i]


@cuda.jit
def _scale_k(x, alpha, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = alpha * x[i]


@cuda.jit
def _copy_channels_k(x, run, row, off, out):
    # x element i: sample i // run, offset i % run within that sample's channels
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        out[(i // run) * row + off + i % run] = x[i]


@cuda.jit
def _slice_channels_k(x, run, row, off, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = x[(i // run) * row + off + i % run]


def add(a, b, out):
    """out = a + b element-wise; returns out."""
    if out.size:
        _add_k[grid(out.size)](flat(a), flat(b), flat(out))
    return out


def scale(x, alpha, out):
    """out = alpha * x element-wise, alpha cast to out's dtype; returns out."""
    if out.size:
        _scale_k[grid(out.size)](flat(x), out.dtype.type(alpha), flat(out))
    return out


def _runs(part, whole, c0):
    """(run, row, off): elements per sample of part, of whole, and the offset of channel c0."""
    spatial = part.size // (part.shape[0] * part.shape[1])
    return part.size // part.shape[0], whole.size // whole.shape[0], c0 * spatial


def copy_channels(x, c0, out):
    """out[:, c0:c0 + C] = x; returns out."""
    if x.size:
        _copy_channels_k[grid(x.size)](flat(x), *_runs(x, out, c0), flat(out))
    return out


def slice_channels(x, c0, out):
    """out = x[:, c0:c0 + C]; returns out."""
    if out.size:
        _slice_channels_k[grid(out.size)](flat(x), *_runs(out, x, c0), flat(out))
    return out


__all__ = ["add", "scale", "copy_channels", "slice_channels"]
