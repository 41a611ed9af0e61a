"""Activation kernels: ReLU, LeakyReLU, Sigmoid, Tanh, Step (element-wise) and Softmax (rows).

Element-wise kernels take C-contiguous arrays of one shape and dtype and run
in one pass each, on cdl's worker pool for large arrays. Scalar arguments
(alpha, and the constant 1) are cast to the arrays' dtype first, so float32
arrays are computed in float32 throughout, as NumPy computes them (a Python
int literal in a Numba loop would promote float32 to float64).

ReLU keeps its output y instead of a mask: y > 0 exactly where x > 0
(NaN and -inf give y = NaN, never > 0), so backward needs no extra array.
Results match NumPy's ``x * (x > 0)`` and ``dout * (x > 0)`` element for
element, NaN and Inf included (``v - v`` is the signed-zero-free 0 * v:
0 for finite v, NaN for Inf and NaN).

Sigmoid is computed as (1 + tanh(x/2)) / 2: no overflow for any x, and
y(1 - y) is its derivative. Softmax works on the rows of a 2-D (rows, cols)
array (callers pass a view with the softmax axis last): subtracting each
row's maximum first keeps exp in range for any finite scores.
"""
import numpy as np
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


@njit(nogil=True, cache=True)
def _leaky_relu_forward(x, alpha, y, a, z):
    xs, ys = x[a:z], y[a:z]
    for i in range(xs.size):
        v = xs[i]
        ys[i] = v if v > 0 else alpha * v


@njit(nogil=True, cache=True)
def _leaky_relu_backward(dout, x, alpha, dx, a, z):
    gs, xs, dxs = dout[a:z], x[a:z], dx[a:z]
    for i in range(gs.size):
        g = gs[i]
        dxs[i] = g if xs[i] > 0 else alpha * g


@njit(nogil=True, cache=True)
def _sigmoid_backward(dout, y, one, dx, a, z):
    gs, ys, dxs = dout[a:z], y[a:z], dx[a:z]
    for i in range(gs.size):
        v = ys[i]
        dxs[i] = gs[i] * v * (one - v)


@njit(nogil=True, cache=True)
def _tanh_backward(dout, y, one, dx, a, z):
    gs, ys, dxs = dout[a:z], y[a:z], dx[a:z]
    for i in range(gs.size):
        v = ys[i]
        dxs[i] = gs[i] * (one - v * v)


@njit(nogil=True, cache=True)
def _step_forward(x, y, a, z):
    xs, ys = x[a:z], y[a:z]
    for i in range(xs.size):
        ys[i] = 1 if xs[i] > 0 else 0


def _each(kernel, *arrays):
    """kernel(*flat views of arrays, a, z) over slices of the elements, in parallel."""
    flats = [a.reshape(-1) if isinstance(a, np.ndarray) else a for a in arrays]
    n = flats[0].size
    run_slices(lambda a, z: kernel(*flats, a, z), n, work=n)


def relu_forward(x, y):
    """y = max(x, 0) element-wise (x, y C-contiguous, same shape and dtype); returns y."""
    _each(_relu_forward, x, y)
    return y


def relu_backward(dout, y, dx):
    """dx = dout where y > 0, else 0 (y: the forward output); returns dx."""
    _each(_relu_backward, dout, y, dx)
    return dx


def leaky_relu_forward(x, alpha, y):
    """y = x where x > 0, else alpha * x, element-wise; returns y."""
    _each(_leaky_relu_forward, x, x.dtype.type(alpha), y)
    return y


def leaky_relu_backward(dout, x, alpha, dx):
    """dx = dout where x > 0, else alpha * dout (x: the forward input); returns dx."""
    _each(_leaky_relu_backward, dout, x, x.dtype.type(alpha), dx)
    return dx


def sigmoid_forward(x, y):
    """y = 1 / (1 + exp(-x)) = (1 + tanh(x / 2)) / 2 element-wise (never overflows); returns y."""
    np.multiply(x, 0.5, out=y)
    np.tanh(y, out=y)
    y += 1
    y *= 0.5
    return y


def sigmoid_backward(dout, y, dx):
    """dx = dout * y * (1 - y) (y: the forward output); returns dx."""
    _each(_sigmoid_backward, dout, y, y.dtype.type(1), dx)
    return dx


def tanh_forward(x, y):
    """y = tanh(x) element-wise; returns y."""
    return np.tanh(x, out=y)


def tanh_backward(dout, y, dx):
    """dx = dout * (1 - y^2) (y: the forward output); returns dx."""
    _each(_tanh_backward, dout, y, y.dtype.type(1), dx)
    return dx


def step_forward(x, y):
    """y = 1 where x > 0, else 0 (NaN gives 0) element-wise; returns y."""
    _each(_step_forward, x, y)
    return y


def step_backward(dout, dx):
    """dx = 0 (the step's derivative almost everywhere; dout only gives the shape); returns dx."""
    dx.fill(0)
    return dx


def softmax_forward(x, y):
    """Softmax of each row, x and y (rows, cols): y_ij = exp(x_ij - m_i) / sum_k exp(x_ik - m_i),
    m_i the row's maximum; returns y."""
    np.subtract(x, x.max(axis=1, keepdims=True), out=y)
    np.exp(y, out=y)
    y /= y.sum(axis=1, keepdims=True)
    return y


def softmax_backward(dout, y, dx):
    """dx = y * (dout - sum_j dout_j y_j) per row (y: the forward output, (rows, cols))."""
    np.multiply(dout, y, out=dx)
    s = dx.sum(axis=1, keepdims=True)
    np.subtract(dout, s, out=dx)
    dx *= y
    return dx


__all__ = ["relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
           "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
           "step_forward", "step_backward", "softmax_forward", "softmax_backward"]
