"""Fused first-order update kernels: one pass over memory per parameter array.

Each ``*_update`` kernel updates ``p`` and its state in place (and returns
p), reading the gradient once, for float32 and float64 alike (arithmetic in the array's
dtype, scalars folded by the wrapper). The formulas are those of the
optimizer classes in ``cdl.optim``; each docstring restates its own.

Every update has one compiled body, ``_<op>(arrays..., scalars...)``, a loop
over whole flat arrays. Small arrays run it directly in the calling thread;
larger ones (cdl.kernels.parallel.PARALLEL_MIN elements or more) run it on
one contiguous slice of the same arrays per thread, on cdl's worker threads
(``run_slices``, as every other kernel of a training step: no second thread
pool that would spin between steps). The math is written once.

Two things keep the bodies SIMD-vectorized (checked in the assembly; about
3x on Adam): the loop index runs from 0 over a slice, so Numba emits no
negative-index wraparound, and ``error_model="numpy"`` lets a division give
inf like NumPy instead of testing every divisor for a ZeroDivisionError
(eps > 0 keeps every divisor positive anyway). Neither is fastmath: results
are the IEEE ones, bit for bit the same on one thread or many.

The Python wrappers check dtypes, sizes and contiguity before any compiled
code touches memory.
"""
import numpy as np
from numba import njit

from cdl.kernels.parallel import PARALLEL_MIN, run_slices


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _flat(who, p, *others):
    """p and the arrays that go with it as flat views; ValueError unless all match p.

    p (updated in place) must be writeable; of the others, the first is read
    only (the gradient, or the parameters being averaged) and the rest are
    state arrays, updated in place. (Called once per array and step: kept to
    cheap attribute checks, about a microsecond.)
    """
    if not isinstance(p, np.ndarray) or p.dtype not in _FLOATS \
            or not (p.flags.c_contiguous and p.flags.writeable):
        raise ValueError(f"{who}: the updated array must be writeable, C-contiguous float32 "
                         f"or float64, got {getattr(p, 'dtype', type(p).__name__)} "
                         f"{getattr(p, 'shape', '')}")
    out = [p.ravel()]
    for i, a in enumerate(others):
        if not isinstance(a, np.ndarray) or a.dtype != p.dtype or a.size != p.size \
                or not a.flags.c_contiguous or (i > 0 and not a.flags.writeable):
            raise ValueError(f"{who}: argument {i + 2} must be a C-contiguous"
                             f"{' writeable' if i > 0 else ''} {p.dtype} array of {p.size} "
                             f"elements like argument 1 {p.shape}, got "
                             f"{getattr(a, 'dtype', type(a).__name__)} "
                             f"{getattr(a, 'shape', '')}")
        out.append(a.ravel())
    return out


def _launch(body, arrays, scalars):
    """body on the whole arrays, or on one contiguous slice of them per thread."""
    n = arrays[0].size
    if n < PARALLEL_MIN:
        body(*arrays, *scalars)
        return

    def part(a, z):
        body(*[x[a:z] for x in arrays], *scalars)
    run_slices(part, n)


_body = njit(cache=True, nogil=True, error_model="numpy")


# -- SGD -----------------------------------------------------------------------------

@_body
def _sgd(p, g, lr):
    for i in range(p.size):
        p[i] -= lr * g[i]


def sgd_update(p, g, lr):
    """p -= lr * g."""
    arrays = _flat("sgd_update", p, g)
    _launch(_sgd, arrays, (p.dtype.type(lr),))
    return p


# -- Momentum ------------------------------------------------------------------------

@_body
def _momentum(p, g, v, lr, mu):
    for i in range(p.size):
        vi = mu * v[i] - lr * g[i]
        v[i] = vi
        p[i] += vi


def momentum_update(p, g, v, lr, momentum):
    """v <- momentum * v - lr * g;  p <- p + v."""
    f = p.dtype.type
    _launch(_momentum, _flat("momentum_update", p, g, v), (f(lr), f(momentum)))
    return p


# -- Nesterov ------------------------------------------------------------------------

@_body
def _nesterov(p, g, v, lr, mu):
    for i in range(p.size):
        step = lr * g[i]
        vi = mu * v[i] - step
        v[i] = vi
        p[i] += mu * vi - step


def nesterov_update(p, g, v, lr, momentum):
    """Nesterov momentum on the look-ahead parameters p = theta + momentum * v.

    v_new = momentum * v - lr * g;  p <- p + momentum * v_new - lr * g, with g
    the gradient at p (Bengio, Boulanger-Lewandowski & Pascanu 2012,
    arXiv:1212.0901, eq. 7).
    """
    f = p.dtype.type
    _launch(_nesterov, _flat("nesterov_update", p, g, v), (f(lr), f(momentum)))
    return p


# -- AdaGrad -------------------------------------------------------------------------

@_body
def _adagrad(p, g, h, lr, eps):
    for i in range(p.size):
        gi = g[i]
        hi = h[i] + gi * gi
        h[i] = hi
        p[i] -= lr * gi / (eps + np.sqrt(hi))


def adagrad_update(p, g, h, lr, eps):
    """h <- h + g*g;  p <- p - lr * g / (eps + sqrt(h))  (Duchi et al. 2011)."""
    f = p.dtype.type
    _launch(_adagrad, _flat("adagrad_update", p, g, h), (f(lr), f(eps)))
    return p


# -- AdaDelta ------------------------------------------------------------------------

@_body
def _adadelta(p, g, h, r, lr, rho, eps):
    one = p.dtype.type(1)
    for i in range(p.size):
        gi = g[i]
        hi = rho * h[i] + (one - rho) * gi * gi
        h[i] = hi
        d = -np.sqrt((eps + r[i]) / (eps + hi)) * gi
        p[i] += lr * d
        r[i] = rho * r[i] + (one - rho) * d * d


def adadelta_update(p, g, h, r, lr, rho, eps):
    """AdaDelta (Zeiler 2012, Algorithm 1), scaled by lr (1 is the paper's rule).

    h <- rho h + (1-rho) g*g;  d = -sqrt(eps + r) / sqrt(eps + h) * g;
    p <- p + lr * d;  r <- rho r + (1-rho) d*d.
    """
    f = p.dtype.type
    _launch(_adadelta, _flat("adadelta_update", p, g, h, r),
            (f(lr), f(rho), f(eps)))
    return p


# -- RMSProp -------------------------------------------------------------------------

@_body
def _rmsprop(p, g, h, lr, rho, eps):
    one = p.dtype.type(1)
    for i in range(p.size):
        gi = g[i]
        hi = rho * h[i] + (one - rho) * gi * gi
        h[i] = hi
        p[i] -= lr * gi / np.sqrt(eps + hi)


def rmsprop_update(p, g, h, lr, rho, eps):
    """h <- rho h + (1-rho) g*g;  p <- p - lr * g / sqrt(eps + h)  (Hinton, lecture 6e)."""
    f = p.dtype.type
    _launch(_rmsprop, _flat("rmsprop_update", p, g, h), (f(lr), f(rho), f(eps)))
    return p


# -- Adam ----------------------------------------------------------------------------

@_body
def _adam(p, g, m, v, lr_c1, c2, beta1, beta2, eps):
    one = p.dtype.type(1)
    for i in range(p.size):
        gi = g[i]
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_c1 * mi / (np.sqrt(c2 * vi) + eps)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
    """Adam step t (1-based): m, v moving averages; p -= lr * m_hat / (sqrt(v_hat) + eps).

    m_hat = m / (1 - beta1^t) and v_hat = v / (1 - beta2^t) are folded into
    the scalars lr_c1 = lr / (1 - beta1^t) and c2 = 1 / (1 - beta2^t)
    (Kingma & Ba 2015, Algorithm 1).
    """
    if int(t) < 1:
        raise ValueError(f"adam_update: step t must be >= 1, got {t}")
    f = p.dtype.type
    lr_c1 = f(lr / (1.0 - beta1 ** t))
    c2 = f(1.0 / (1.0 - beta2 ** t))
    _launch(_adam, _flat("adam_update", p, g, m, v),
            (lr_c1, c2, f(beta1), f(beta2), f(eps)))
    return p


# -- Around the update: weight decay and parameter averages ---------------------------

@_body
def _decay(g, w, l2, l1):
    zero = w.dtype.type(0)
    for i in range(g.size):
        wi = w[i]
        s = l1 if wi > zero else (-l1 if wi < zero else zero)
        g[i] += l2 * wi + s


def weight_decay_grad(g, w, l2, l1):
    """g += l2 * w + l1 * sign(w) in place (sign(0) = 0): the gradient of the penalty
    l2/2 * ||w||^2 + l1 * sum|w|."""
    f = g.dtype.type
    _launch(_decay, _flat("weight_decay_grad", g, w), (f(l2), f(l1)))
    return g


@_body
def _ema(avg, p, beta):
    one = avg.dtype.type(1)
    for i in range(avg.size):
        avg[i] = beta * avg[i] + (one - beta) * p[i]


def ema_update(avg, p, beta):
    """avg <- beta * avg + (1 - beta) * p in place (beta = 1 - 1/n gives the running mean)."""
    _launch(_ema, _flat("ema_update", avg, p), (avg.dtype.type(beta),))
    return avg


# -- Reductions and clipping, for GradClip and WeightDecay --------------------------------
# NumPy one-liners on the CPU (BLAS dot, one vectorized pass); the CUDA twins reduce
# on the device and bring back only the number.

def sum_squares(x):
    """sum of x*x over the whole array (C-contiguous), as a Python float."""
    f = x.reshape(-1)
    return float(np.dot(f, f))


def sum_abs(x):
    """sum of |x| over the whole array, as a Python float."""
    return float(np.abs(x.reshape(-1)).sum())


def clip_by_value(x, max_value):
    """x clipped to [-max_value, max_value] in place (NaN stays NaN); returns x."""
    np.clip(x, -max_value, max_value, out=x)
    return x


__all__ = ["sgd_update", "momentum_update", "nesterov_update", "adagrad_update",
           "adadelta_update", "rmsprop_update", "adam_update", "weight_decay_grad", "ema_update",
           "sum_squares", "sum_abs", "clip_by_value"]
