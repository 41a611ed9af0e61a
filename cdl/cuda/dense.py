"""Fully connected layer on the GPU: twins of cdl.kernels.dense.

    affine_forward:  y  = x W (+ b)      one GEMM, then a bias-add kernel
    affine_backward: dW = x^T dout       GEMM with a transposed
                     dx = dout W^T       GEMM with b transposed
                     db = sum_n dout[n]  one thread per column (a gather, no atomics)

The GEMMs are cdl.cuda.gemm's (cuBLAS when available, else a numba kernel).
"""
from numba import cuda

from cdl.cuda._launch import grid
from cdl.cuda.gemm import gemm


@cuda.jit
def _add_bias_k(y, b):
    """y[n, o] += b[o], y (N, O) viewed flat."""
    O = b.size
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, y.size, step):
        y[i] += b[i % O]


@cuda.jit
def _column_sums_k(a, out):
    """out[j] = sum_i a[i, j], one thread per column, in float64."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, out.size, step):
        acc = 0.0
        for i in range(a.shape[0]):
            acc += a[i, j]
        out[j] = acc


def affine_forward(x, W, b, y):
    """y = x @ W (+ b), written into y. x (N, D), W (D, O), b (O,) or None, y (N, O)."""
    gemm(x, W, y)
    if b is not None and y.size:
        _add_bias_k[grid(y.size)](y.reshape(y.size), b)
    return y


def affine_backward(dout, x, W, dx, dW, db):
    """dx = dout @ W.T, dW = x.T @ dout, db = dout summed over the batch, into the outputs.

    dout (N, O), x (N, D), W (D, O); dx (N, D) or None (not wanted), dW (D, O),
    db (O,) or None.
    """
    gemm(x, dout, dW, trans_a=True)
    if db is not None and db.size:
        _column_sums_k[grid(db.size)](dout, db)
    if dx is not None:
        gemm(dout, W, dx, trans_b=True)
    return dx, dW, db


__all__ = ["affine_forward", "affine_backward"]
