"""First-order updates on the GPU: twins of cdl.kernels.optim (formulas there).

Each update is one element-wise kernel over the flat arrays (one thread per
element, grid-stride loop), with the scalars folded on the host exactly as
the CPU wrappers fold them: rounded to the parameters' dtype, and the
``1 - rho`` style constants computed in that dtype, so the arithmetic inside
is the CPU body's. The wrappers check the arrays as the CPU ones do (float
dtype, same size, C-contiguous), for device arrays.

``sum_squares`` and ``sum_abs`` reduce in float64 with ``cdl.cuda._reduce.total``
(two passes, one float copied back).
"""
import math

import numpy as np
from numba import cuda

from cdl._checks import device_c_contiguous, is_device_array
from cdl.cuda._launch import flat, grid
from cdl.cuda._reduce import ABS, SQUARES, total

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(a):
    return f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}"


def _flat(who, p, *others):
    """p and the arrays that go with it as flat views; ValueError unless all match p
    (the checks of the CPU wrappers, for device arrays: those are always writeable)."""
    if not is_device_array(p) or p.dtype not in _FLOATS or not device_c_contiguous(p):
        raise ValueError(f"{who}: the updated array must be a C-contiguous float32 or "
                         f"float64 device array, got {_describe(p)}")
    out = [flat(p)]
    for i, a in enumerate(others):
        if not is_device_array(a) or a.dtype != p.dtype or a.size != p.size \
                or not device_c_contiguous(a):
            raise ValueError(f"{who}: argument {i + 2} must be a C-contiguous {p.dtype} device "
                             f"array of {p.size} elements like argument 1 {p.shape}, got "
                             f"{_describe(a)}")
        out.append(flat(a))
    return out


def _run(kernel, arrays, *scalars):
    n = arrays[0].size
    if n:
        kernel[grid(n)](*arrays, *scalars)


# -- the updates (argument order as in the CPU bodies) ----------------------------------

@cuda.jit
def _sgd_k(p, g, lr):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i] -= lr * g[i]


@cuda.jit
def _momentum_k(p, g, v, lr, mu):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        vi = mu * v[i] - lr * g[i]
        v[i] = vi
        p[i] += vi


@cuda.jit
def _nesterov_k(p, g, v, lr, mu):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        step = lr * g[i]
        vi = mu * v[i] - step
        v[i] = vi
        p[i] += mu * vi - step


@cuda.jit
def _adagrad_k(p, g, h, lr, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        hi = h[i] + gi * gi
        h[i] = hi
        p[i] -= lr * gi / (eps + math.sqrt(hi))


@cuda.jit
def _adadelta_k(p, g, h, r, lr, rho, one_rho, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        hi = rho * h[i] + one_rho * gi * gi
        h[i] = hi
        d = -math.sqrt((eps + r[i]) / (eps + hi)) * gi
        p[i] += lr * d
        r[i] = rho * r[i] + one_rho * d * d


@cuda.jit
def _rmsprop_k(p, g, h, lr, rho, one_rho, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        hi = rho * h[i] + one_rho * gi * gi
        h[i] = hi
        p[i] -= lr * gi / math.sqrt(eps + hi)


@cuda.jit
def _adam_k(p, g, m, v, lr_c1, c2, beta1, one_beta1, beta2, one_beta2, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        mi = beta1 * m[i] + one_beta1 * gi
        vi = beta2 * v[i] + one_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_c1 * mi / (math.sqrt(c2 * vi) + eps)


@cuda.jit
def _decay_k(g, w, l2, l1, minus_l1, zero):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        wi = w[i]
        s = l1 if wi > zero else (minus_l1 if wi < zero else zero)
        g[i] += l2 * wi + s


@cuda.jit
def _ema_k(avg, p, beta, one_beta):
    for i in range(cuda.grid(1), avg.size, cuda.gridsize(1)):
        avg[i] = beta * avg[i] + one_beta * p[i]


def sgd_update(p, g, lr):
    """p -= lr * g."""
    _run(_sgd_k, _flat("sgd_update", p, g), p.dtype.type(lr))
    return p


def momentum_update(p, g, v, lr, momentum):
    """v <- momentum * v - lr * g;  p <- p + v."""
    f = p.dtype.type
    _run(_momentum_k, _flat("momentum_update", p, g, v), f(lr), f(momentum))
    return p


def nesterov_update(p, g, v, lr, momentum):
    """v_new = momentum * v - lr * g;  p <- p + momentum * v_new - lr * g (look-ahead form)."""
    f = p.dtype.type
    _run(_nesterov_k, _flat("nesterov_update", p, g, v), f(lr), f(momentum))
    return p


def adagrad_update(p, g, h, lr, eps):
    """h <- h + g*g;  p <- p - lr * g / (eps + sqrt(h))."""
    f = p.dtype.type
    _run(_adagrad_k, _flat("adagrad_update", p, g, h), f(lr), f(eps))
    return p


def adadelta_update(p, g, h, r, lr, rho, eps):
    """h <- rho h + (1-rho) g*g;  d = -sqrt(eps + r) / sqrt(eps + h) * g;
    p <- p + lr * d;  r <- rho r + (1-rho) d*d."""
    f = p.dtype.type
    _run(_adadelta_k, _flat("adadelta_update", p, g, h, r), f(lr), f(rho), f(1) - f(rho), f(eps))
    return p


def rmsprop_update(p, g, h, lr, rho, eps):
    """h <- rho h + (1-rho) g*g;  p <- p - lr * g / sqrt(eps + h)."""
    f = p.dtype.type
    _run(_rmsprop_k, _flat("rmsprop_update", p, g, h), f(lr), f(rho), f(1) - f(rho), f(eps))
    return p


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
    """Adam step t (1-based), bias corrections folded into lr_c1 and c2 as on the CPU."""
    if int(t) < 1:
        raise ValueError(f"adam_update: step t must be >= 1, got {t}")
    f = p.dtype.type
    lr_c1 = f(lr / (1.0 - beta1 ** t))
    c2 = f(1.0 / (1.0 - beta2 ** t))
    _run(_adam_k, _flat("adam_update", p, g, m, v), lr_c1, c2,
         f(beta1), f(1) - f(beta1), f(beta2), f(1) - f(beta2), f(eps))
    return p


def weight_decay_grad(g, w, l2, l1):
    """g += l2 * w + l1 * sign(w) in place (sign(0) = 0)."""
    f = g.dtype.type
    _run(_decay_k, _flat("weight_decay_grad", g, w), f(l2), f(l1), -f(l1), f(0))
    return g


def ema_update(avg, p, beta):
    """avg <- beta * avg + (1 - beta) * p in place."""
    f = avg.dtype.type
    _run(_ema_k, _flat("ema_update", avg, p), f(beta), f(1) - f(beta))
    return avg


# -- reductions and clipping ------------------------------------------------------------

def sum_squares(x):
    """sum of x*x over the whole array (C-contiguous), as a Python float."""
    return total(flat(x), SQUARES)


def sum_abs(x):
    """sum of |x| over the whole array, as a Python float."""
    return total(flat(x), ABS)


@cuda.jit
def _clip_k(x, lo, hi):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if v > hi:    # comparisons are False for NaN: it stays, as np.clip keeps it
            x[i] = hi
        elif v < lo:
            x[i] = lo


def clip_by_value(x, max_value):
    """x clipped to [-max_value, max_value] in place (NaN stays NaN); returns x."""
    if x.size:
        f = x.dtype.type
        _clip_k[grid(x.size)](flat(x), f(-max_value), f(max_value))
    return x


__all__ = ["sgd_update", "momentum_update", "nesterov_update", "adagrad_update",
           "adadelta_update", "rmsprop_update", "adam_update", "weight_decay_grad", "ema_update",
           "sum_squares", "sum_abs", "clip_by_value"]
