"""Losses on the GPU: twins of cdl.kernels.loss (formulas there).

Forwards write each row's (softmax) or element's (sigmoid, squared error)
share of the loss into a float64 scratch array, which ``cdl.cuda._reduce.total``
sums (no atomics); only that one number comes back to the host. Softmax rows
are one thread each (rows are short: classes); the rest is one thread per
element.

Labels are read on the device. The layers check their range only for host
labels; a device label outside [0, C) makes its row's loss NaN here rather
than read outside the row.
"""
import math

import numpy as np
from numba import cuda, float64

from cdl.cuda._launch import flat, grid
from cdl.cuda._minmax import max2
from cdl.cuda._reduce import total
from cdl.cuda.activation import softmax_row


@cuda.jit
def _sce_labels_forward_k(y, t, probs, rows):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, y.shape[0], step):
        m, log_s = softmax_row(y, r, probs)
        k = t[r]
        if k < 0 or k >= y.shape[1]:
            rows[r] = math.nan
        else:
            rows[r] = log_s - (y[r, k] - m)


@cuda.jit
def _sce_targets_forward_k(y, t, probs, rows):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, y.shape[0], step):
        m, log_s = softmax_row(y, r, probs)
        acc = float64(0.0)
        for j in range(y.shape[1]):
            acc += t[r, j] * ((y[r, j] - m) - log_s)
        rows[r] = -acc


@cuda.jit
def _sce_labels_backward_k(probs, t, one, inv_n, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    cols = probs.shape[1]
    for i in range(start, probs.size, step):
        r, j = i // cols, i % cols
        p = probs[r, j]
        dx[r, j] = ((p - one) if t[r] == j else p) * inv_n


@cuda.jit
def _difference_k(a, b, inv_n, dx):
    # dx = (a - b) / N: the backward of all three losses but labelled cross-entropy
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dx.size, step):
        dx[i] = (a[i] - b[i]) * inv_n


@cuda.jit
def _bce_forward_k(y, t, probs, terms):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, y.size, step):
        v = float64(y[i])  # one element per output: float64 costs nothing here
        e = math.exp(-abs(v))
        terms[i] = max2(v, 0.0) - v * float64(t[i]) + math.log1p(e)
        probs[i] = (1.0 if v >= 0 else e) / (1.0 + e)


@cuda.jit
def _squares_k(y, t, terms):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, y.size, step):
        d = float64(y[i] - t[i])
        terms[i] = d * d


def softmax_cross_entropy_forward(y, t, probs):
    """Mean softmax cross-entropy of y (N, C) against labels (N,) or targets (N, C).

    Writes softmax(y) into probs; returns the loss as a float."""
    N = y.shape[0]
    rows = cuda.device_array(N, dtype=np.float64)
    kernel = _sce_labels_forward_k if t.ndim == 1 else _sce_targets_forward_k
    kernel[grid(N)](y, t, probs, rows)
    return total(rows) / N


def softmax_cross_entropy_backward(probs, t, dx):
    """dx = (probs - onehot(t)) / N; returns dx."""
    inv_n = dx.dtype.type(1.0 / probs.shape[0])
    if t.ndim == 1:
        _sce_labels_backward_k[grid(probs.size)](probs, t, dx.dtype.type(1), inv_n, dx)
    else:
        _difference_k[grid(probs.size)](flat(probs), flat(t), inv_n, flat(dx))
    return dx


def sigmoid_cross_entropy_forward(y, t, probs):
    """Sigmoid + binary cross-entropy, summed per sample, mean over the batch, as a float.

    Writes sigmoid(y) into probs."""
    terms = cuda.device_array(y.size, dtype=np.float64)
    _bce_forward_k[grid(y.size)](flat(y), flat(t), flat(probs), terms)
    return total(terms) / y.shape[0]


def sigmoid_cross_entropy_backward(probs, t, dx):
    """dx = (probs - t) / N; returns dx."""
    inv_n = dx.dtype.type(1.0 / probs.shape[0])
    _difference_k[grid(probs.size)](flat(probs), flat(t), inv_n, flat(dx))
    return dx


def mean_squared_error_forward(y, t):
    """1/2 * mean over the batch of the per-sample sum of (y - t)^2, as a float."""
    terms = cuda.device_array(y.size, dtype=np.float64)
    _squares_k[grid(y.size)](flat(y), flat(t), terms)
    return 0.5 * total(terms) / y.shape[0]


def mean_squared_error_backward(y, t, dx):
    """dx = (y - t) / N; returns dx."""
    inv_n = dx.dtype.type(1.0 / y.shape[0])
    _difference_k[grid(y.size)](flat(y), flat(t), inv_n, flat(dx))
    return dx


__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
           "sigmoid_cross_entropy_forward", "sigmoid_cross_entropy_backward",
           "mean_squared_error_forward", "mean_squared_error_backward"]
