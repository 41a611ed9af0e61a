"""Loss kernels: softmax cross-entropy, sigmoid cross-entropy, mean squared error.

Each forward returns the loss as a Python float, a mean over the batch
(axis 0, N = y.shape[0]), and writes what backward needs (the softmax or
sigmoid probabilities) into ``probs``; each backward writes dL/dy into dx.
Targets t have y's dtype and shape, except softmax cross-entropy's integer
labels of shape (N,). The kernels trust their inputs: the loss layers check
shapes, dtypes and label ranges.

- Softmax cross-entropy, y (N, C): with z = y - max_row and the
  log-sum-exp log s = log sum_j exp(z_j), L = -1/N sum_n sum_k t_nk (z_nk -
  log s_n) (labels: t one-hot). Exact and finite for any finite scores
  (the loss is formed from z and log s, never from log(probs)).
  dL/dy = (softmax(y) - t) / N.
- Sigmoid cross-entropy (binary cross-entropy on logits), y of any shape:
  L = 1/N sum over all elements of max(y, 0) - y t + log(1 + exp(-|y|)),
  which is -[t log p + (1 - t) log(1 - p)] with p = sigmoid(y), evaluated
  without overflow. dL/dy = (p - t) / N.
- Mean squared error: L = 1/2 * 1/N sum (y - t)^2; dL/dy = (y - t) / N.
"""
import numpy as np


def softmax_cross_entropy_forward(y, t, probs):
    """Mean softmax cross-entropy of scores y (N, C) against labels t (N,) or targets (N, C).

    Writes softmax(y) into probs (N, C); returns the loss as a float.
    """
    N = y.shape[0]
    z = y - y.max(axis=1, keepdims=True)
    np.exp(z, out=probs)
    s = probs.sum(axis=1, keepdims=True)
    log_s = np.log(s)
    if t.ndim == 1:
        loss = (log_s[:, 0] - z[np.arange(N), t]).sum() / N
    else:
        z -= log_s   # log softmax
        z *= t
        loss = -z.sum() / N
    probs /= s
    return float(loss)


def softmax_cross_entropy_backward(probs, t, dx):
    """dx = (probs - onehot(t)) / N (t: labels (N,) or targets (N, C)); returns dx."""
    N = probs.shape[0]
    if t.ndim == 1:
        np.copyto(dx, probs)
        dx[np.arange(N), t] -= 1
    else:
        np.subtract(probs, t, out=dx)
    dx *= 1.0 / N
    return dx


def sigmoid_cross_entropy_forward(y, t, probs):
    """Sigmoid + binary cross-entropy of logits y against targets t in [0, 1] (y's shape).

    Sum over each sample's elements, mean over the batch; writes sigmoid(y)
    into probs and returns the loss as a float.
    """
    e = np.exp(-np.abs(y))                      # in (0, 1]: never overflows
    loss = np.maximum(y, 0) - y * t + np.log1p(e)
    np.divide(np.where(y >= 0, 1, e), 1 + e, out=probs)
    return float(loss.sum() / y.shape[0])


def sigmoid_cross_entropy_backward(probs, t, dx):
    """dx = (probs - t) / N (probs: the sigmoid of the scores); returns dx."""
    np.subtract(probs, t, out=dx)
    dx *= 1.0 / probs.shape[0]
    return dx


def mean_squared_error_forward(y, t):
    """1/2 * mean over the batch of the sum of (y - t)^2 per sample, as a float."""
    d = y - t
    return float(0.5 * (d * d).sum() / y.shape[0])


def mean_squared_error_backward(y, t, dx):
    """dx = (y - t) / N; returns dx."""
    np.subtract(y, t, out=dx)
    dx *= 1.0 / y.shape[0]
    return dx


__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
           "sigmoid_cross_entropy_forward", "sigmoid_cross_entropy_backward",
           "mean_squared_error_forward", "mean_squared_error_backward"]
