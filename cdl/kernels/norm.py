"""Batch-normalization kernels, fused, over x viewed as (N, C, L).

An (N, C, H, W) image batch is viewed as (N, C, H*W) and an (N, D) batch as
(N, D, 1) — free reshapes, no transposes. Channel c's m = N*L values are
normalised together (Ioffe & Szegedy 2015, Algorithm 1):

    mean = sum x / m,  var = sum (x - mean)^2 / m   (biased: the batch's own)
    y    = gamma * (x - mean) / sqrt(var + eps) + beta

Backward (same paper, sec. 3; xhat = (x - mean) * r, r = 1/sqrt(var + eps)):

    dbeta  = sum dout,  dgamma = sum dout * xhat
    dx     = gamma * r * (dout - dbeta / m - xhat * dgamma / m)

With ``batch_stats=False`` (inference statistics held fixed, as a frozen
layer uses them) mean and r are constants and dx = gamma * r * dout.

Around them, two small per-channel kernels keep the layer off NumPy (its
arrays may live on the GPU): ``batchnorm_inv_std`` (r = 1/sqrt(var + eps))
and ``batchnorm_running_update`` (the running statistics' moving average).

Statistics are accumulated in float64 whatever the input dtype, as shifted
sums (every value minus the channel's first value, so cancellation stays
small when |mean| >> std). Four independent accumulators per sum keep the
loops pipelined without ``fastmath``. The element-wise passes run in the
input's dtype: per-channel constants are rounded to it through ``coef``, a
(5, C) scratch array of that dtype. The mean goes in as two parts, hi =
round(mean) and lo = round(mean - hi), and x - mean as (x - hi) - lo: x - hi
is exact near the mean (Sterbenz), so a float32 batch with |mean| >> std
keeps float32 accuracy in x - mean instead of losing it to the rounded mean.

Threads: the public functions split the channels (image batches) or blocks
of 128 features ((N, D) batches, feature index innermost so the loops stay
contiguous) over cdl's one worker pool (cdl.kernels.parallel.run_slices, as
the conv and pool kernels do); the Numba loops run serially per slice with
the GIL released. Small batches run in the calling thread.
"""
import numpy as np
from numba import njit

from cdl.kernels.parallel import run_slices

_BLOCK = 128         # features per slice item for (N, D) input


@njit(cache=True, inline="always")
def _split_mean(c, mu, coef):
    """coef[0, c] = hi = mu rounded to coef's dtype; coef[4, c] = lo = mu - hi, rounded."""
    coef[0, c] = mu
    coef[4, c] = mu - coef[0, c]


@njit(cache=True, inline="always")
def _channel_sums(x, c, k):
    """(sum (x - k), sum (x - k)^2) over channel c of x (N, C, L), float64."""
    N, _, L = x.shape
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    q0 = 0.0
    q1 = 0.0
    q2 = 0.0
    q3 = 0.0
    L4 = L - L % 4
    for n in range(N):
        for i in range(0, L4, 4):
            d0 = x[n, c, i] - k
            d1 = x[n, c, i + 1] - k
            d2 = x[n, c, i + 2] - k
            d3 = x[n, c, i + 3] - k
            a0 += d0
            a1 += d1
            a2 += d2
            a3 += d3
            q0 += d0 * d0
            q1 += d1 * d1
            q2 += d2 * d2
            q3 += d3 * d3
        for i in range(L4, L):
            d0 = x[n, c, i] - k
            a0 += d0
            q0 += d0 * d0
    return (a0 + a1) + (a2 + a3), (q0 + q1) + (q2 + q3)


@njit(cache=True, inline="always")
def _channel_dot(dout, x, c, mu):
    """(sum dout, sum dout * (x - mu)) over channel c, float64."""
    N, _, L = x.shape
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    q0 = 0.0
    q1 = 0.0
    q2 = 0.0
    q3 = 0.0
    L4 = L - L % 4
    for n in range(N):
        for i in range(0, L4, 4):
            g0 = np.float64(dout[n, c, i])
            g1 = np.float64(dout[n, c, i + 1])
            g2 = np.float64(dout[n, c, i + 2])
            g3 = np.float64(dout[n, c, i + 3])
            a0 += g0
            a1 += g1
            a2 += g2
            a3 += g3
            q0 += g0 * (x[n, c, i] - mu)
            q1 += g1 * (x[n, c, i + 1] - mu)
            q2 += g2 * (x[n, c, i + 2] - mu)
            q3 += g3 * (x[n, c, i + 3] - mu)
        for i in range(L4, L):
            g0 = np.float64(dout[n, c, i])
            a0 += g0
            q0 += g0 * (x[n, c, i] - mu)
    return (a0 + a1) + (a2 + a3), (q0 + q1) + (q2 + q3)


def batchnorm_forward(x, gamma, beta, eps, y, mean, var, coef):
    """Training BN. x, y (N, C, L); gamma, beta (C,); writes mean, var (C,) float64.

    coef (5, C) is scratch in y's dtype. var is the biased batch variance.
    """
    N, C, L = x.shape
    if L == 1:
        x2, y2 = x.reshape(N, C), y.reshape(N, C)
        run_slices(lambda a, z: _rows_forward(x2, gamma, beta, eps, y2, mean, var, coef,
                                              a * _BLOCK, min(z * _BLOCK, C)),
                   _blocks(C), work=x.size)
    else:
        run_slices(lambda a, z: _channels_forward(x, gamma, beta, eps, y, mean, var, coef, a, z),
                   C, work=x.size)
    return y, mean, var


def batchnorm_apply(x, mean, inv_std, gamma, beta, y, coef):
    """Inference BN. y = gamma * (x - mean) * inv_std + beta with fixed mean, inv_std (C,)."""
    N, C, L = x.shape
    _apply_coef(mean, inv_std, gamma, coef)
    if L == 1:
        x2, y2 = x.reshape(N, C), y.reshape(N, C)
        run_slices(lambda a, z: _rows_apply(x2, beta, y2, coef, a * _BLOCK, min(z * _BLOCK, C)),
                   _blocks(C), work=x.size)
    else:
        run_slices(lambda a, z: _channels_apply(x, beta, y, coef, a, z), C, work=x.size)
    return y


def batchnorm_backward(dout, x, mean, inv_std, gamma, batch_stats, dx, dgamma, dbeta, coef):
    """BN backward. dout, x, dx (N, C, L); mean, inv_std (C,); writes dgamma, dbeta (C,) float64.

    batch_stats: mean and inv_std came from this batch (training), so dx
    carries their dependence on x; False treats them as constants.
    """
    N, C, L = x.shape
    batch_stats = bool(batch_stats)
    if L == 1:
        d2, x2, dx2 = dout.reshape(N, C), x.reshape(N, C), dx.reshape(N, C)
        run_slices(lambda a, z: _rows_backward(d2, x2, mean, inv_std, gamma, batch_stats, dx2,
                                               dgamma, dbeta, coef, a * _BLOCK,
                                               min(z * _BLOCK, C)),
                   _blocks(C), work=x.size)
    else:
        run_slices(lambda a, z: _channels_backward(dout, x, mean, inv_std, gamma, batch_stats, dx,
                                                   dgamma, dbeta, coef, a, z), C, work=x.size)
    return dx, dgamma, dbeta


def batchnorm_inv_std(var, eps, inv_std):
    """inv_std = 1 / sqrt(var + eps) in float64, var (C,) of any float dtype; returns inv_std."""
    np.divide(1.0, np.sqrt(np.add(var, eps, dtype=np.float64)), out=inv_std)
    return inv_std


def batchnorm_running_update(mean, var, momentum, correction, running_mean, running_var):
    """running <- momentum * running + (1 - momentum) * batch, in place (all (C,)).

    The batch variance enters as var * correction (m / (m - 1) makes the
    biased batch variance unbiased). The products with momentum are in the
    running buffers' dtype and the sums in float64, rounded on the store.
    """
    a = momentum
    running_mean[...] = a * running_mean + (1.0 - a) * mean
    running_var[...] = a * running_var + (1.0 - a) * (var * correction)
    return running_mean, running_var


def _blocks(C):
    return (C + _BLOCK - 1) // _BLOCK


# -- (N, C, L), L > 1: channels c0 <= c < c1 ------------------------------------
@njit(nogil=True, cache=True)
def _channels_forward(x, gamma, beta, eps, y, mean, var, coef, c0, c1):
    N, C, L = x.shape
    m = N * L
    for c in range(c0, c1):
        k = np.float64(x[0, c, 0])
        s1, s2 = _channel_sums(x, c, k)
        d = s1 / m
        mean[c] = k + d
        var[c] = max(s2 / m - d * d, 0.0)
        _split_mean(c, mean[c], coef)
        coef[1, c] = gamma[c] / np.sqrt(var[c] + eps)
        hi, lo, sc, b = coef[0, c], coef[4, c], coef[1, c], beta[c]
        for n in range(N):
            for i in range(L):
                y[n, c, i] = ((x[n, c, i] - hi) - lo) * sc + b


@njit(cache=True)
def _apply_coef(mean, inv_std, gamma, coef):
    for c in range(mean.shape[0]):
        _split_mean(c, mean[c], coef)
        coef[1, c] = gamma[c] * inv_std[c]


@njit(nogil=True, cache=True)
def _channels_apply(x, beta, y, coef, c0, c1):
    N, C, L = x.shape
    for c in range(c0, c1):
        hi, lo, sc, b = coef[0, c], coef[4, c], coef[1, c], beta[c]
        for n in range(N):
            for i in range(L):
                y[n, c, i] = ((x[n, c, i] - hi) - lo) * sc + b


@njit(nogil=True, cache=True)
def _channels_backward(dout, x, mean, inv_std, gamma, batch_stats, dx, dgamma, dbeta, coef,
                       c0, c1):
    N, C, L = x.shape
    m = N * L
    for c in range(c0, c1):
        sg, sgx = _channel_dot(dout, x, c, mean[c])
        _backward_coef(c, sg, sgx, m, mean, inv_std, gamma, batch_stats, dgamma, dbeta, coef)
        hi, lo, a, b, s = coef[0, c], coef[4, c], coef[1, c], coef[2, c], coef[3, c]
        for n in range(N):
            for i in range(L):
                dx[n, c, i] = dout[n, c, i] * a + ((x[n, c, i] - hi) - lo) * b + s


# -- (N, D): features c0 <= c < c1, rows innermost-contiguous ------------------
# Per-feature accumulators live in small local arrays indexed by the feature, so
# the inner loop runs along a contiguous row and vectorises across features.
@njit(nogil=True, cache=True)
def _rows_forward(x, gamma, beta, eps, y, mean, var, coef, c0, c1):
    N, C = x.shape
    B = c1 - c0
    k = np.empty(B)
    s1 = np.zeros(B)
    s2 = np.zeros(B)
    for c in range(B):
        k[c] = x[0, c0 + c]
    for n in range(N):
        row = x[n, c0:c1]
        for c in range(B):
            d = row[c] - k[c]
            s1[c] += d
            s2[c] += d * d
    for c in range(B):
        d = s1[c] / N
        mean[c0 + c] = k[c] + d
        var[c0 + c] = max(s2[c] / N - d * d, 0.0)
        _split_mean(c0 + c, mean[c0 + c], coef)
        coef[1, c0 + c] = gamma[c0 + c] / np.sqrt(var[c0 + c] + eps)
    _rows_affine(x, y, coef[0, c0:c1], coef[4, c0:c1], coef[1, c0:c1], beta[c0:c1], c0, c1)


@njit(cache=True, inline="always")
def _rows_affine(x, y, hi, lo, sc, b, c0, c1):
    """y[:, c0:c1] = ((x - hi) - lo) * sc + b, row by row."""
    for n in range(x.shape[0]):
        xr = x[n, c0:c1]
        yr = y[n, c0:c1]
        for c in range(c1 - c0):
            yr[c] = ((xr[c] - hi[c]) - lo[c]) * sc[c] + b[c]


@njit(nogil=True, cache=True)
def _rows_apply(x, beta, y, coef, c0, c1):
    _rows_affine(x, y, coef[0, c0:c1], coef[4, c0:c1], coef[1, c0:c1], beta[c0:c1], c0, c1)


@njit(nogil=True, cache=True)
def _rows_backward(dout, x, mean, inv_std, gamma, batch_stats, dx, dgamma, dbeta, coef, c0, c1):
    N, C = x.shape
    B = c1 - c0
    mu = mean[c0:c1]
    sg = np.zeros(B)
    sgx = np.zeros(B)
    for n in range(N):
        gr = dout[n, c0:c1]
        xr = x[n, c0:c1]
        for c in range(B):
            g = np.float64(gr[c])
            sg[c] += g
            sgx[c] += g * (xr[c] - mu[c])
    for c in range(B):
        _backward_coef(c0 + c, sg[c], sgx[c], N, mean, inv_std, gamma, batch_stats,
                       dgamma, dbeta, coef)
    hi, a, b = coef[0, c0:c1], coef[1, c0:c1], coef[2, c0:c1]
    s, lo = coef[3, c0:c1], coef[4, c0:c1]
    for n in range(N):
        gr = dout[n, c0:c1]
        xr = x[n, c0:c1]
        dr = dx[n, c0:c1]
        for c in range(B):
            dr[c] = gr[c] * a[c] + ((xr[c] - hi[c]) - lo[c]) * b[c] + s[c]


@njit(cache=True, inline="always")
def _backward_coef(c, sg, sgx, m, mean, inv_std, gamma, batch_stats, dgamma, dbeta, coef):
    """dgamma, dbeta of channel c; dx = a*dout + b*(x - mean) + s with coef[1..3] = a, b, s."""
    r = inv_std[c]
    dbeta[c] = sg
    dgamma[c] = sgx * r
    a = gamma[c] * r
    _split_mean(c, mean[c], coef)
    coef[1, c] = a
    if batch_stats:
        # dx = a * (dout - sg/m - xhat * dgamma/m) with xhat = (x - mean) * r
        coef[2, c] = -a * r * dgamma[c] / m
        coef[3, c] = -a * sg / m
    else:
        coef[2, c] = 0.0
        coef[3, c] = 0.0


__all__ = ["batchnorm_forward", "batchnorm_apply", "batchnorm_backward", "batchnorm_inv_std",
           "batchnorm_running_update"]
