"""ReLU forward and backward: one pass each, on cdl's worker pool for large arrays.

The layer keeps its output y instead of a mask: y > 0 exactly where x > 0
(NaN and -inf give y = NaN, never > 0), so backward needs no extra array.
Results match NumPy's ``x * (x > 0)`` and ``dout * (x > 0)`` element for
element, NaN and Inf included (``v - v`` is the signed-zero-free 0 * v:
0 for finite v, NaN for Inf and NaN).
"""
from numba import njit

from cdl.kernels.parallel import run_slices

# Each kernel takes its slice as views first: with 0-based indexes LLVM vectorizes the
# loop (2.7x faster than indexing x[a:z] in place, measured on AVX2).
@njit(nogil=True, cache=True)
def _relu_forward(x, y, a, z):
    xs, ys = x[a:z], y[a:z]
    for i in range(xs.size):
        v = xs[i]
        ys[i] = v if v > 0 else v - v


@njit(nogil=True, cache=True)
def _relu_backward(dout, y, dx, a, z):
    gs, ys, dxs = dout[a:z], y[a:z], dx[a:z]
    for i in range(gs.size):
        g = gs[i]
        dxs[i] = g if ys[i] > 0 else g - g


def relu_forward(x, y):
    """y = max(x, 0) element-wise (x, y C-contiguous, same shape and dtype); returns y."""
    xf, yf = x.reshape(-1), y.reshape(-1)
    run_slices(lambda a, z: _relu_forward(xf, yf, a, z), xf.size, work=xf.size)
    return y


def relu_backward(dout, y, dx):
    """dx = dout where y > 0, else 0 (y: the forward output); returns dx."""
    df, yf, dxf = dout.reshape(-1), y.reshape(-1), dx.reshape(-1)
    run_slices(lambda a, z: _relu_backward(df, yf, dxf, a, z), df.size, work=df.size)
    return dx


__all__ = ["relu_forward", "relu_backward"]
