"""Activations on the GPU: twins of cdl.kernels.activation.

Element-wise kernels: one thread per element, grid-stride loops. Softmax:
one thread per row of the 2-D (rows, cols) view (rows are short: classes).
Scalars (alpha, 1/2, 1) are passed in the arrays' dtype, so float32 stays
float32 on the GPU (an int literal would promote the arithmetic to float64).
"""
import math

from numba import cuda

from cdl.cuda._launch import flat, grid
from cdl.cuda._minmax import max2
from cdl.cuda.memory import fill


@cuda.jit
def _relu_forward_k(x, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        v = x[i]
        y[i] = v if v > 0 else v - v  # v - v keeps NaN (as the CPU kernel does)


@cuda.jit
def _relu_backward_k(dout, y, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dout.size, step):
        g = dout[i]
        dx[i] = g if y[i] > 0 else g - g


@cuda.jit
def _leaky_relu_forward_k(x, alpha, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        v = x[i]
        y[i] = v if v > 0 else alpha * v


@cuda.jit
def _leaky_relu_backward_k(dout, x, alpha, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dout.size, step):
        g = dout[i]
        dx[i] = g if x[i] > 0 else alpha * g


@cuda.jit
def _sigmoid_forward_k(x, half, one, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        y[i] = (math.tanh(x[i] * half) + one) * half


@cuda.jit
def _sigmoid_backward_k(dout, y, one, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dout.size, step):
        v = y[i]
        dx[i] = dout[i] * v * (one - v)


@cuda.jit
def _tanh_forward_k(x, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        y[i] = math.tanh(x[i])


@cuda.jit
def _tanh_backward_k(dout, y, one, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dout.size, step):
        v = y[i]
        dx[i] = dout[i] * (one - v * v)


@cuda.jit
def _step_forward_k(x, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        y[i] = 1 if x[i] > 0 else 0


@cuda.jit(device=True)
def softmax_row(x, r, y):
    """y[r] = softmax(x[r]); returns (row max, log of the sum of exp(x[r] - max)), which
    cdl.cuda.loss needs for the cross-entropy."""
    cols = x.shape[1]
    m = x[r, 0]
    for j in range(1, cols):
        m = max2(m, x[r, j])
    s = math.exp(x[r, 0] - m)
    y[r, 0] = s
    for j in range(1, cols):
        e = math.exp(x[r, j] - m)
        y[r, j] = e
        s += e
    for j in range(cols):
        y[r, j] /= s
    return m, math.log(s)


@cuda.jit
def _softmax_forward_k(x, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, x.shape[0], step):
        softmax_row(x, r, y)


@cuda.jit
def _softmax_backward_k(dout, y, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    rows, cols = y.shape
    for r in range(start, rows, step):
        s = dout[r, 0] * y[r, 0]
        for j in range(1, cols):
            s += dout[r, j] * y[r, j]
        for j in range(cols):
            dx[r, j] = (dout[r, j] - s) * y[r, j]


def relu_forward(x, y):
    """y = max(x, 0) element-wise; returns y."""
    if x.size:
        _relu_forward_k[grid(x.size)](flat(x), flat(y))
    return y


def relu_backward(dout, y, dx):
    """dx = dout where y > 0, else 0; returns dx."""
    if dout.size:
        _relu_backward_k[grid(dout.size)](flat(dout), flat(y), flat(dx))
    return dx


def leaky_relu_forward(x, alpha, y):
    """y = x where x > 0, else alpha * x; returns y."""
    if x.size:
        _leaky_relu_forward_k[grid(x.size)](flat(x), x.dtype.type(alpha), flat(y))
    return y


def leaky_relu_backward(dout, x, alpha, dx):
    """dx = dout where x > 0, else alpha * dout; returns dx."""
    if dout.size:
        _leaky_relu_backward_k[grid(dout.size)](flat(dout), flat(x), x.dtype.type(alpha),
                                                flat(dx))
    return dx


def sigmoid_forward(x, y):
    """y = (1 + tanh(x / 2)) / 2 element-wise; returns y."""
    if x.size:
        _sigmoid_forward_k[grid(x.size)](flat(x), x.dtype.type(0.5), x.dtype.type(1), flat(y))
    return y


def sigmoid_backward(dout, y, dx):
    """dx = dout * y * (1 - y); returns dx."""
    if dout.size:
        _sigmoid_backward_k[grid(dout.size)](flat(dout), flat(y), y.dtype.type(1), flat(dx))
    return dx


def tanh_forward(x, y):
    """y = tanh(x) element-wise; returns y."""
    if x.size:
        _tanh_forward_k[grid(x.size)](flat(x), flat(y))
    return y


def tanh_backward(dout, y, dx):
    """dx = dout * (1 - y^2); returns dx."""
    if dout.size:
        _tanh_backward_k[grid(dout.size)](flat(dout), flat(y), y.dtype.type(1), flat(dx))
    return dx


def step_forward(x, y):
    """y = 1 where x > 0, else 0; returns y."""
    if x.size:
        _step_forward_k[grid(x.size)](flat(x), flat(y))
    return y


def step_backward(dout, dx):
    """dx = 0; returns dx."""
    return fill(dx, 0)


def softmax_forward(x, y):
    """Softmax of each row of x (rows, cols) into y; returns y."""
    if x.size:
        _softmax_forward_k[grid(x.shape[0])](x, y)
    return y


def softmax_backward(dout, y, dx):
    """dx = y * (dout - sum_j dout_j y_j) per row; returns dx."""
    if dout.size:
        _softmax_backward_k[grid(y.shape[0])](dout, y, dx)
    return dx


__all__ = ["relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
           "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
           "step_forward", "step_backward", "softmax_forward", "softmax_backward"]
