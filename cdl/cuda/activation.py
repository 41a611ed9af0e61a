"""Element-wise activations on the GPU: twins of cdl.kernels.activation."""
from numba import cuda

from cdl.cuda._launch import flat, grid


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


__all__ = ["relu_forward", "relu_backward"]
