"""The binarized layers' float math on the GPU: twins of cdl.kernels.binarize.

Element-wise kernels take one thread per element (grid-stride loops); the
per-channel reductions take one block per channel (a grid-stride loop over
channels), its threads striding over the channel's A*B elements and summing
in shared memory, so nothing needs atomics.
"""
import numpy as np
from numba import cuda, float64

from cdl.cuda import memory as _mem
from cdl.cuda._launch import MAX_BLOCKS, flat, grid
from cdl.cuda._minmax import max2, min2
from cdl.cuda._random import xoroshiro128p_dtype, xoroshiro128p_uniform_float64
from cdl.cuda._reduce import tree_sum

_RT = 128                 # threads per block of the channel reductions (a power of two)
_RANDOM_BLOCKS = 64       # generator states: at most _RANDOM_BLOCKS * THREADS per call
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@cuda.jit
def _sign_forward_k(x, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        y[i] = 1 if x[i] >= 0 else -1


@cuda.jit
def _ste_backward_k(dout, x, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dout.size, step):
        g = dout[i]
        dx[i] = g if abs(x[i]) <= 1 else g - g  # g - g keeps NaN (as the CPU kernel does)


@cuda.jit
def _clip_k(w, lo, hi, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, w.size, step):
        v = w[i]
        out[i] = lo if v < lo else (hi if v > hi else v)


@cuda.jit
def _clip_sign_k(w, lo, hi, out, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, w.size, step):
        v = w[i]
        c = lo if v < lo else (hi if v > hi else v)
        out[i] = c
        y[i] = 1 if c >= 0 else -1


@cuda.jit(device=True)
def _splitmix64(z):
    """The SplitMix64 output function: a well-mixed 64-bit word from a counter."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@cuda.jit
def _stochastic_sign_k(seed, states, x, y):
    t = cuda.grid(1)
    # Each thread seeds its own xoroshiro128+ state from SplitMix64, as the generator's
    # authors recommend; numba's create_xoroshiro128p_states would seed them on the host
    # (a jump-ahead per state, then a copy to the GPU) at every call.
    z = seed + np.uint64(2 * t + 1) * _GOLDEN
    states[t]["s0"] = _splitmix64(z)
    states[t]["s1"] = _splitmix64(z + _GOLDEN)
    for i in range(t, x.size, cuda.gridsize(1)):
        p = min2(max2((x[i] + 1) * 0.5, 0.0), 1.0)
        y[i] = 1 if xoroshiro128p_uniform_float64(states, t) < p else -1


@cuda.jit
def _channel_scale_shift_k(x, alpha, b, has_alpha, has_b, F, B, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        f = (i // B) % F
        v = x[i]
        if has_alpha:
            v = v * alpha[f]
        if has_b:
            v = v + b[f]
        y[i] = v


@cuda.jit
def _channel_abs_mean_backward_k(dalpha, w, F, B, fan_in, dw):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, w.size, step):
        v = w[i]
        s = 1 if v > 0 else (-1 if v < 0 else v - v)  # sgn, 0 at 0 (NaN stays NaN)
        dw[i] += dalpha[(i // B) % F] * s / fan_in


@cuda.jit(device=True)
def _block_total(acc):
    """The sum of acc over the threads of the block (a tree in shared memory), for all."""
    buf = cuda.shared.array(_RT, float64)
    t = cuda.threadIdx.x
    buf[t] = acc
    tree_sum(buf, t, _RT)
    total = buf[0]
    cuda.syncthreads()  # buf is reused by this block's next channel
    return total


@cuda.jit
def _channel_sum_k(x, out):
    A, F, B = x.shape
    for f in range(cuda.blockIdx.x, F, cuda.gridDim.x):
        acc = 0.0
        for k in range(cuda.threadIdx.x, A * B, _RT):
            acc += x[k // B, f, k % B]
        total = _block_total(acc)
        if cuda.threadIdx.x == 0:
            out[f] = total


@cuda.jit
def _channel_dot_k(x, z, out):
    A, F, B = x.shape
    for f in range(cuda.blockIdx.x, F, cuda.gridDim.x):
        acc = 0.0
        for k in range(cuda.threadIdx.x, A * B, _RT):
            acc += x[k // B, f, k % B] * z[k // B, f, k % B]
        total = _block_total(acc)
        if cuda.threadIdx.x == 0:
            out[f] = total


@cuda.jit
def _channel_abs_mean_k(w, out):
    A, F, B = w.shape
    for f in range(cuda.blockIdx.x, F, cuda.gridDim.x):
        acc = 0.0
        for k in range(cuda.threadIdx.x, A * B, _RT):
            acc += abs(w[k // B, f, k % B])
        total = _block_total(acc)
        if cuda.threadIdx.x == 0:
            out[f] = total / (A * B)


def _per_channel(F):
    # at least one block: a GPU refuses a launch of none (the simulator runs it as a no-op)
    return max(1, min(F, MAX_BLOCKS)), _RT


def sign_forward(x, y):
    """y = +1 where x >= 0, else -1 (NaN: -1), element-wise; returns y."""
    if x.size:
        _sign_forward_k[grid(x.size)](flat(x), flat(y))
    return y


def stochastic_sign_forward(x, rng, y):
    """y = +1 with probability clip((x + 1) / 2, 0, 1), else -1; returns y.

    Draws one 64-bit seed from rng (a numpy Generator) and generates on the
    device with numba.cuda.random's xoroshiro128+, one state per thread.
    """
    seed = np.uint64(rng.integers(2**63))
    if x.size:
        blocks, threads = grid(x.size)
        blocks = min(blocks, _RANDOM_BLOCKS)
        states = _mem.empty(blocks * threads, xoroshiro128p_dtype)
        _stochastic_sign_k[blocks, threads](seed, states, flat(x), flat(y))
    return y


def ste_backward(dout, x, dx):
    """dx = dout where |x| <= 1, else 0; dx may be dout; returns dx."""
    if dout.size:
        _ste_backward_k[grid(dout.size)](flat(dout), flat(x), flat(dx))
    return dx


def clip(w, lo, hi, out):
    """out = min(max(w, lo), hi) element-wise; out may be w; returns out."""
    if w.size:
        t = out.dtype.type
        _clip_k[grid(w.size)](flat(w), t(lo), t(hi), flat(out))
    return out


def clip_sign_forward(w, lo, hi, out, y, alpha):
    """out = clip(w, lo, hi) and y = sign(out) in one pass; then alpha (F,) = mean |out| over
    a and b of the (A, F, B) views, unless alpha is None; out may be w; returns y."""
    if w.size:
        t = out.dtype.type
        _clip_sign_k[grid(w.size)](flat(w), t(lo), t(hi), flat(out), flat(y))
    if alpha is not None:
        channel_abs_mean(out, alpha)
    return y


def channel_scale_shift(x, alpha, b, y):
    """y (A, F, B) = x * alpha[f] + b[f] (alpha or b None: left out); y may be x."""
    if x.size:
        _, F, B = x.shape
        yf = flat(y)
        # an absent operand is never read: any array of the right kind stands in for it
        _channel_scale_shift_k[grid(x.size)](
            flat(x), yf if alpha is None else alpha, yf if b is None else b,
            alpha is not None, b is not None, F, B, yf)
    return y


def channel_sum(x, out):
    """out (F,) = x (A, F, B) summed over a and b."""
    _channel_sum_k[_per_channel(x.shape[1])](x, out)
    return out


def channel_dot(x, z, out):
    """out (F,) = (x * z) summed over a and b; x, z (A, F, B)."""
    _channel_dot_k[_per_channel(x.shape[1])](x, z, out)
    return out


def channel_abs_mean(w, out):
    """out (F,) = mean of |w| over a and b; w (A, F, B)."""
    _channel_abs_mean_k[_per_channel(w.shape[1])](w, out)
    return out


def channel_abs_mean_backward(dalpha, w, dw):
    """dw (A, F, B) += dalpha[f] * sgn(w) / (A*B)."""
    if w.size:
        _, F, B = w.shape
        _channel_abs_mean_backward_k[grid(w.size)](dalpha, flat(w), F, B, w.size // F,
                                                   flat(dw))
    return dw


__all__ = ["sign_forward", "stochastic_sign_forward", "ste_backward", "clip", "clip_sign_forward",
           "channel_scale_shift", "channel_sum", "channel_dot", "channel_abs_mean",
           "channel_abs_mean_backward"]
