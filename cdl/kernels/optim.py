"""Fused first-order update kernels: one pass over memory per parameter array.

Each kernel updates ``p`` and its state in place, reading the gradient once,
for float32 and float64 alike (arithmetic in the array's dtype, scalars
folded by the caller). Arrays are flat, contiguous views. Small arrays run
serially; large ones in parallel chunks (a thread wake-up costs more than a
bias vector's update).
"""
import numpy as np
from numba import njit, prange

PARALLEL_MIN = 1 << 16  # elements; below this a parallel launch costs more than it saves


@njit(cache=True)
def _sgd(p, g, lr):
    for i in range(p.size):
        p[i] -= lr * g[i]


@njit(parallel=True, cache=True)
def _sgd_par(p, g, lr):
    for i in prange(p.size):
        p[i] -= lr * g[i]


def sgd_update(p, g, lr):
    """p -= lr * g."""
    lr = p.dtype.type(lr)
    (_sgd_par if p.size >= PARALLEL_MIN else _sgd)(p.reshape(-1), g.reshape(-1), lr)


@njit(cache=True)
def _adam(p, g, m, v, lr_c1, c2, beta1, beta2, eps):
    one = p.dtype.type(1)
    for i in range(p.size):
        gi = g[i]
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_c1 * mi / (np.sqrt(c2 * vi) + eps)


@njit(parallel=True, cache=True)
def _adam_par(p, g, m, v, lr_c1, c2, beta1, beta2, eps):
    one = p.dtype.type(1)
    for i in prange(p.size):
        gi = g[i]
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_c1 * mi / (np.sqrt(c2 * vi) + eps)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
    """Adam step t (1-based): m, v moving averages; p -= lr * m_hat / (sqrt(v_hat) + eps).

    m_hat = m / (1 - beta1^t) and v_hat = v / (1 - beta2^t) are folded into
    the scalars lr_c1 = lr / (1 - beta1^t) and c2 = 1 / (1 - beta2^t).
    """
    f = p.dtype.type
    lr_c1 = f(lr / (1.0 - beta1 ** t))
    c2 = f(1.0 / (1.0 - beta2 ** t))
    fn = _adam_par if p.size >= PARALLEL_MIN else _adam
    fn(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), lr_c1, c2,
       f(beta1), f(beta2), f(eps))
