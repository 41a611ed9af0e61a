"""Fully connected layer kernels: y = x W + b and its gradients, on BLAS.

    affine_forward:  y  = x W (+ b)          x (N, D), W (D, O) -> y (N, O)
    affine_backward: dx = dout W^T           (N, O) -> (N, D)
                     dW = x^T dout           (D, O), rows of dW split across threads
                     db = sum_n dout[n]      (O,)

The GEMMs run in slices on cdl's worker threads with BLAS held to one thread
(cdl.kernels.parallel, rules 1 and 2): the batch rows for y and dx, the rows
of dW (the D input features) for dW, so every slice writes only its own rows
and no reduction across threads is needed. OpenBLAS's own threads, which spin
after each call, are never woken by a training step.

Inputs are trusted (the layer checks shapes and dtypes); outputs are written
into the caller's arrays.
"""
import numpy as np

from cdl.kernels.parallel import run_slices

# Below these a GEMM takes a few microseconds, less than handing out a slice costs.
_MIN_ROWS = 32
_MIN_OUTPUTS = 1 << 12


def _threads_for(rows, cols):
    """Slices worth making for a GEMM producing (rows, cols); None means all threads."""
    return 1 if rows < _MIN_ROWS or rows * cols < _MIN_OUTPUTS else None


def affine_forward(x, W, b, y):
    """y = x @ W (+ b), written into y. x (N, D), W (D, O), b (O,) or None, y (N, O)."""
    def rows(a, z):
        np.matmul(x[a:z], W, out=y[a:z])
        if b is not None:
            y[a:z] += b
    run_slices(rows, x.shape[0], threads=_threads_for(x.shape[0], W.shape[1]))
    return y


def affine_backward(dout, x, W, dx, dW, db):
    """dx = dout @ W.T, dW = x.T @ dout, db = dout summed over the batch, into the outputs.

    dout (N, O), x (N, D), W (D, O); dx (N, D) or None (not wanted), dW (D, O),
    db (O,) or None.
    """
    def weight_rows(a, z):
        np.matmul(x[:, a:z].T, dout, out=dW[a:z])
    run_slices(weight_rows, W.shape[0], threads=_threads_for(W.shape[0], W.shape[1]))
    if db is not None:
        np.sum(dout, axis=0, out=db)
    if dx is not None:
        def input_rows(a, z):
            np.matmul(dout[a:z], W.T, out=dx[a:z])
        run_slices(input_rows, dout.shape[0], threads=_threads_for(dout.shape[0], W.shape[0]))
    return dx, dW, db


__all__ = ["affine_forward", "affine_backward"]
