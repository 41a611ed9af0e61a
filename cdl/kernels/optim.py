"""Fused first-order update kernels: one pass over memory per parameter array.

Each ``*_update`` kernel updates ``p`` and its state in place, reading the
gradient once, for float32 and float64 alike (arithmetic in the array's
dtype, scalars folded by the wrapper). The formulas are those of the
optimizer classes in ``cdl.optim``; each docstring restates its own.

Every update has one compiled body over an index range, ``_<op>(..., lo, hi)``.
Small arrays run it serially over the whole range; arrays of PARALLEL_MIN
elements or more run ``_<op>_par``, which hands CHUNK-sized ranges of the
same body to the threads (a thread wake-up costs more than a bias vector's
update, so small arrays never pay it). The math is written once.

The Python wrappers check dtypes, sizes and contiguity before any compiled
code touches memory.
"""
import numba
import numpy as np
from numba import njit, prange

PARALLEL_MIN = 1 << 16  # elements; below this a parallel launch costs more than it saves
CHUNK = 1 << 14         # elements per parallel work item: 64 KiB of float32 per array


def _flat(who, p, *others):
    """p and the arrays that go with it as flat views; ValueError unless all match p.

    p (updated in place) must be writeable; of the others, the first is read
    only (the gradient, or the parameters being averaged) and the rest are
    state arrays, updated in place.
    """
    if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64) \
            or not p.flags.c_contiguous or not p.flags.writeable:
        raise ValueError(f"{who}: the updated array must be writeable, C-contiguous float32 "
                         f"or float64, got {getattr(p, 'dtype', type(p).__name__)} "
                         f"{getattr(p, 'shape', '')}")
    out = [p.reshape(-1)]
    for i, a in enumerate(others):
        if not isinstance(a, np.ndarray) or a.dtype != p.dtype or a.size != p.size \
                or not a.flags.c_contiguous or (i > 0 and not a.flags.writeable):
            raise ValueError(f"{who}: argument {i + 2} must be a C-contiguous"
                             f"{' writeable' if i > 0 else ''} {p.dtype} array of {p.size} "
                             f"elements like argument 1 {p.shape}, got "
                             f"{getattr(a, 'dtype', type(a).__name__)} "
                             f"{getattr(a, 'shape', '')}")
        out.append(a.reshape(-1))
    return out


def _launch(body, par, arrays, scalars):
    n = arrays[0].size
    if n >= PARALLEL_MIN and numba.get_num_threads() > 1:
        par(*arrays, *scalars)
    else:
        body(*arrays, *scalars, 0, n)


@njit(cache=True)
def _chunks(n):
    return (n + CHUNK - 1) // CHUNK


# -- SGD -----------------------------------------------------------------------------

@njit(cache=True)
def _sgd(p, g, lr, lo, hi):
    for i in range(lo, hi):
        p[i] -= lr * g[i]


@njit(parallel=True, cache=True)
def _sgd_par(p, g, lr):
    n = p.size
    for c in prange(_chunks(n)):
        _sgd(p, g, lr, c * CHUNK, min(n, (c + 1) * CHUNK))


def sgd_update(p, g, lr):
    """p -= lr * g."""
    arrays = _flat("sgd_update", p, g)
    _launch(_sgd, _sgd_par, arrays, (p.dtype.type(lr),))


# -- Momentum ------------------------------------------------------------------------

@njit(cache=True)
def _momentum(p, g, v, lr, mu, lo, hi):
    for i in range(lo, hi):
        vi = mu * v[i] - lr * g[i]
        v[i] = vi
        p[i] += vi


@njit(parallel=True, cache=True)
def _momentum_par(p, g, v, lr, mu):
    n = p.size
    for c in prange(_chunks(n)):
        _momentum(p, g, v, lr, mu, c * CHUNK, min(n, (c + 1) * CHUNK))


def momentum_update(p, g, v, lr, momentum):
    """v <- momentum * v - lr * g;  p <- p + v."""
    f = p.dtype.type
    _launch(_momentum, _momentum_par, _flat("momentum_update", p, g, v), (f(lr), f(momentum)))


# -- Nesterov ------------------------------------------------------------------------

@njit(cache=True)
def _nesterov(p, g, v, lr, mu, lo, hi):
    for i in range(lo, hi):
        step = lr * g[i]
        vi = mu * v[i] - step
        v[i] = vi
        p[i] += mu * vi - step


@njit(parallel=True, cache=True)
def _nesterov_par(p, g, v, lr, mu):
    n = p.size
    for c in prange(_chunks(n)):
        _nesterov(p, g, v, lr, mu, c * CHUNK, min(n, (c + 1) * CHUNK))


def nesterov_update(p, g, v, lr, momentum):
    """Nesterov momentum on the look-ahead parameters p = theta + momentum * v.

    v_new = momentum * v - lr * g;  p <- p + momentum * v_new - lr * g, with g
    the gradient at p (Bengio, Boulanger-Lewandowski & Pascanu 2012,
    arXiv:1212.0901, eq. 7).
    """
    f = p.dtype.type
    _launch(_nesterov, _nesterov_par, _flat("nesterov_update", p, g, v), (f(lr), f(momentum)))


# -- AdaGrad -------------------------------------------------------------------------

@njit(cache=True)
def _adagrad(p, g, h, lr, eps, lo, hi):
    for i in range(lo, hi):
        gi = g[i]
        hi_ = h[i] + gi * gi
        h[i] = hi_
        p[i] -= lr * gi / (eps + np.sqrt(hi_))


@njit(parallel=True, cache=True)
def _adagrad_par(p, g, h, lr, eps):
    n = p.size
    for c in prange(_chunks(n)):
        _adagrad(p, g, h, lr, eps, c * CHUNK, min(n, (c + 1) * CHUNK))


def adagrad_update(p, g, h, lr, eps):
    """h <- h + g*g;  p <- p - lr * g / (eps + sqrt(h))  (Duchi et al. 2011)."""
    f = p.dtype.type
    _launch(_adagrad, _adagrad_par, _flat("adagrad_update", p, g, h), (f(lr), f(eps)))


# -- AdaDelta ------------------------------------------------------------------------

@njit(cache=True)
def _adadelta(p, g, h, r, lr, rho, eps, lo, hi):
    one = p.dtype.type(1)
    for i in range(lo, hi):
        gi = g[i]
        hi_ = rho * h[i] + (one - rho) * gi * gi
        h[i] = hi_
        d = -np.sqrt((eps + r[i]) / (eps + hi_)) * gi
        p[i] += lr * d
        r[i] = rho * r[i] + (one - rho) * d * d


@njit(parallel=True, cache=True)
def _adadelta_par(p, g, h, r, lr, rho, eps):
    n = p.size
    for c in prange(_chunks(n)):
        _adadelta(p, g, h, r, lr, rho, eps, c * CHUNK, min(n, (c + 1) * CHUNK))


def adadelta_update(p, g, h, r, lr, rho, eps):
    """AdaDelta (Zeiler 2012, Algorithm 1), scaled by lr (1 is the paper's rule).

    h <- rho h + (1-rho) g*g;  d = -sqrt(eps + r) / sqrt(eps + h) * g;
    p <- p + lr * d;  r <- rho r + (1-rho) d*d.
    """
    f = p.dtype.type
    _launch(_adadelta, _adadelta_par, _flat("adadelta_update", p, g, h, r),
            (f(lr), f(rho), f(eps)))


# -- RMSProp -------------------------------------------------------------------------

@njit(cache=True)
def _rmsprop(p, g, h, lr, rho, eps, lo, hi):
    one = p.dtype.type(1)
    for i in range(lo, hi):
        gi = g[i]
        hi_ = rho * h[i] + (one - rho) * gi * gi
        h[i] = hi_
        p[i] -= lr * gi / np.sqrt(eps + hi_)


@njit(parallel=True, cache=True)
def _rmsprop_par(p, g, h, lr, rho, eps):
    n = p.size
    for c in prange(_chunks(n)):
        _rmsprop(p, g, h, lr, rho, eps, c * CHUNK, min(n, (c + 1) * CHUNK))


def rmsprop_update(p, g, h, lr, rho, eps):
    """h <- rho h + (1-rho) g*g;  p <- p - lr * g / sqrt(eps + h)  (Hinton, lecture 6e)."""
    f = p.dtype.type
    _launch(_rmsprop, _rmsprop_par, _flat("rmsprop_update", p, g, h), (f(lr), f(rho), f(eps)))


# -- Adam ----------------------------------------------------------------------------

@njit(cache=True)
def _adam(p, g, m, v, lr_c1, c2, beta1, beta2, eps, lo, hi):
    one = p.dtype.type(1)
    for i in range(lo, hi):
        gi = g[i]
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_c1 * mi / (np.sqrt(c2 * vi) + eps)


@njit(parallel=True, cache=True)
def _adam_par(p, g, m, v, lr_c1, c2, beta1, beta2, eps):
    n = p.size
    for c in prange(_chunks(n)):
        _adam(p, g, m, v, lr_c1, c2, beta1, beta2, eps, c * CHUNK, min(n, (c + 1) * CHUNK))


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
    _launch(_adam, _adam_par, _flat("adam_update", p, g, m, v),
            (lr_c1, c2, f(beta1), f(beta2), f(eps)))


# -- Around the update: weight decay and parameter averages ----------------------------------

@njit(cache=True)
def _decay(g, w, l2, l1, lo, hi):
    zero = w.dtype.type(0)
    for i in range(lo, hi):
        wi = w[i]
        s = l1 if wi > zero else (-l1 if wi < zero else zero)
        g[i] += l2 * wi + s


@njit(parallel=True, cache=True)
def _decay_par(g, w, l2, l1):
    n = g.size
    for c in prange(_chunks(n)):
        _decay(g, w, l2, l1, c * CHUNK, min(n, (c + 1) * CHUNK))


def weight_decay_grad(g, w, l2, l1):
    """g += l2 * w + l1 * sign(w) in place (sign(0) = 0): the gradient of the penalty
    l2/2 * ||w||^2 + l1 * sum|w|."""
    f = g.dtype.type
    _launch(_decay, _decay_par, _flat("weight_decay_grad", g, w), (f(l2), f(l1)))


@njit(cache=True)
def _ema(avg, p, beta, lo, hi):
    one = avg.dtype.type(1)
    for i in range(lo, hi):
        avg[i] = beta * avg[i] + (one - beta) * p[i]


@njit(parallel=True, cache=True)
def _ema_par(avg, p, beta):
    n = avg.size
    for c in prange(_chunks(n)):
        _ema(avg, p, beta, c * CHUNK, min(n, (c + 1) * CHUNK))


def ema_update(avg, p, beta):
    """avg <- beta * avg + (1 - beta) * p in place (beta = 1 - 1/n gives the running mean)."""
    _launch(_ema, _ema_par, _flat("ema_update", avg, p), (avg.dtype.type(beta),))
