"""Batch normalization on the GPU: twins of cdl.kernels.norm (formulas and coef layout there).

x is viewed as (N, C, L) as on the CPU: (N, D) batches as (N, D, 1), image
batches as (N, C, H*W). The statistics of channel c are a reduction over
its m = N*L values: one block per channel (a grid-stride loop over the
channels when there are more than MAX_BLOCKS), each thread accumulating
shifted float64 sums over a strided share of the m values, then a tree
reduction in shared memory. Thread 0 turns the sums into the channel's
statistics and ``coef`` entries (rounded to the input's dtype by the store,
as on the CPU), and after a barrier every thread of the block writes its
share of the channel's outputs. Inference (``batchnorm_apply``) has no
reduction: one thread per channel fills coef, then one thread per element.
"""
import math

import numpy as np
from numba import cuda, float64

from cdl.cuda._launch import MAX_BLOCKS, flat, grid
from cdl.cuda._minmax import max2
from cdl.cuda._reduce import MAX_THREADS as _T
from cdl.cuda._reduce import block_threads, tree_sum2


@cuda.jit
def _batchnorm_forward_k(x, gamma, beta, eps, y, mean, var, coef):
    s1 = cuda.shared.array(_T, float64)
    s2 = cuda.shared.array(_T, float64)
    N, C, L = x.shape
    m = N * L
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        k = float64(x[0, c, 0])  # shift: sums of x - k cancel little when |mean| >> std
        a = float64(0.0)
        q = float64(0.0)
        for j in range(t, m, nt):
            d = float64(x[j // L, c, j % L]) - k
            a += d
            q += d * d
        s1[t] = a
        s2[t] = q
        tree_sum2(s1, s2, t, nt)
        if t == 0:
            d = s1[0] / m
            mu = k + d
            v = max2(s2[0] / m - d * d, 0.0)
            mean[c] = mu
            var[c] = v
            coef[0, c] = mu               # hi: mu rounded to the dtype
            coef[4, c] = mu - coef[0, c]  # lo: the rest, rounded
            coef[1, c] = float64(gamma[c]) / math.sqrt(v + eps)
        cuda.syncthreads()
        hi, lo, sc, b = coef[0, c], coef[4, c], coef[1, c], beta[c]
        for j in range(t, m, nt):
            n, i = j // L, j % L
            y[n, c, i] = ((x[n, c, i] - hi) - lo) * sc + b
        cuda.syncthreads()  # s1, s2 are reused by the next channel


@cuda.jit
def _apply_coef_k(mean, inv_std, gamma, coef):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for c in range(start, mean.size, step):
        mu = float64(mean[c])
        coef[0, c] = mu
        coef[4, c] = mu - coef[0, c]
        coef[1, c] = float64(gamma[c]) * float64(inv_std[c])


@cuda.jit
def _batchnorm_apply_k(x, beta, y, coef, C, L):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, x.size, step):
        c = (j // L) % C
        y[j] = ((x[j] - coef[0, c]) - coef[4, c]) * coef[1, c] + beta[c]


@cuda.jit
def _batchnorm_backward_k(dout, x, mean, inv_std, gamma, batch_stats, dx, dgamma, dbeta, coef):
    s1 = cuda.shared.array(_T, float64)
    s2 = cuda.shared.array(_T, float64)
    N, C, L = x.shape
    m = N * L
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        mu = float64(mean[c])
        a = float64(0.0)
        q = float64(0.0)
        for j in range(t, m, nt):
            n, i = j // L, j % L
            g = float64(dout[n, c, i])
            a += g
            q += g * (float64(x[n, c, i]) - mu)
        s1[t] = a
        s2[t] = q
        tree_sum2(s1, s2, t, nt)
        if t == 0:
            # dx = a*dout + b*(x - mean) + s with coef[1..3] = a, b, s (see the CPU kernel)
            sg, r = s1[0], float64(inv_std[c])
            dbeta[c] = sg
            dg = s2[0] * r
            dgamma[c] = dg
            ga = float64(gamma[c]) * r
            coef[0, c] = mu
            coef[4, c] = mu - coef[0, c]
            coef[1, c] = ga
            if batch_stats:
                coef[2, c] = -ga * r * dg / m
                coef[3, c] = -ga * sg / m
            else:
                coef[2, c] = 0.0
                coef[3, c] = 0.0
        cuda.syncthreads()
        hi, lo, ca, cb, cs = coef[0, c], coef[4, c], coef[1, c], coef[2, c], coef[3, c]
        for j in range(t, m, nt):
            n, i = j // L, j % L
            dx[n, c, i] = dout[n, c, i] * ca + ((x[n, c, i] - hi) - lo) * cb + cs
        cuda.syncthreads()


@cuda.jit
def _inv_std_k(var, eps, inv_std):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for c in range(start, var.size, step):
        inv_std[c] = 1.0 / math.sqrt(float64(var[c]) + eps)


@cuda.jit
def _running_update_k(mean, var, am, av, one_minus_a, correction, running_mean, running_var):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for c in range(start, mean.size, step):
        # momentum * running in the buffer's dtype (am, av), the sum in float64: as NumPy does
        running_mean[c] = float64(am * running_mean[c]) + one_minus_a * float64(mean[c])
        running_var[c] = float64(av * running_var[c]) \
            + one_minus_a * (float64(var[c]) * correction)


def _channel_grid(C, m):
    # at least one block: a GPU refuses a launch of none (the simulator runs it as a no-op)
    return max(1, min(C, MAX_BLOCKS)), block_threads(m)


def batchnorm_forward(x, gamma, beta, eps, y, mean, var, coef):
    """Training BN. x, y (N, C, L); gamma, beta (C,); writes mean, var (C,) float64.

    coef (5, C) is scratch in y's dtype. var is the biased batch variance.
    """
    N, C, L = x.shape
    _batchnorm_forward_k[_channel_grid(C, N * L)](x, gamma, beta, float(eps), y, mean, var, coef)
    return y, mean, var


def batchnorm_apply(x, mean, inv_std, gamma, beta, y, coef):
    """Inference BN. y = gamma * (x - mean) * inv_std + beta with fixed mean, inv_std (C,)."""
    N, C, L = x.shape
    _apply_coef_k[grid(C)](mean, inv_std, gamma, coef)
    _batchnorm_apply_k[grid(x.size)](flat(x), beta, flat(y), coef, C, L)
    return y


def batchnorm_backward(dout, x, mean, inv_std, gamma, batch_stats, dx, dgamma, dbeta, coef):
    """BN backward. dout, x, dx (N, C, L); mean, inv_std (C,); writes dgamma, dbeta (C,) float64.

    batch_stats: mean and inv_std came from this batch (training), so dx
    carries their dependence on x; False treats them as constants.
    """
    N, C, L = x.shape
    _batchnorm_backward_k[_channel_grid(C, N * L)](dout, x, mean, inv_std, gamma,
                                                   bool(batch_stats), dx, dgamma, dbeta, coef)
    return dx, dgamma, dbeta


def batchnorm_inv_std(var, eps, inv_std):
    """inv_std = 1 / sqrt(var + eps) in float64, var (C,) of any float dtype; returns inv_std."""
    _inv_std_k[grid(var.size)](var, float(eps), inv_std)
    return inv_std


def batchnorm_running_update(mean, var, momentum, correction, running_mean, running_var):
    """running <- momentum * running + (1 - momentum) * batch, in place (all (C,));
    the batch variance enters as var * correction."""
    am, av = running_mean.dtype.type(momentum), running_var.dtype.type(momentum)
    _running_update_k[grid(mean.size)](mean, var, am, av, np.float64(1.0 - momentum),
                                       np.float64(correction), running_mean, running_var)
    return running_mean, running_var


__all__ = ["batchnorm_forward", "batchnorm_apply", "batchnorm_backward", "batchnorm_inv_std",
           "batchnorm_running_update"]
