"""The float math of the binarized layers: sign, straight-through gradient, clipping, scales.

    sign_forward(x, y)                       y = +1 where x >= 0, else -1
    stochastic_sign_forward(x, rng, y)       y = +1 with probability hard_sigmoid(x)
    ste_backward(dout, x, dx)                dx = dout where |x| <= 1, else 0
    clip(w, lo, hi, out)                     out = min(max(w, lo), hi)
    clip_sign_forward(w, lo, hi, out, y, alpha)
                                             out = clip(w, lo, hi), y = sign(out) and
                                             alpha[f] = mean |out| (alpha may be None)

The sign follows the bit convention of ``cdl.kernels.binary`` (+1 for
x >= 0). The straight-through estimator is that of the BNN paper
(Courbariaux, Hubara et al. 2016, sec. 1.3): d sign(r)/dr taken as 1{|r| <= 1}.

Per-channel kernels see their arrays as 3-D views (A, F, B) with the channel
axis in the middle: (N, F, 1) for an affine output or for W (in, out) of
BinaryAffine, (N, F, OH*OW) for a conv output, (1, F, C*KH*KW) for the
weights of BinaryConv2D.

    channel_scale_shift(x, alpha, b, y)      y = x * alpha[f] + b[f] (either may be None)
    channel_sum(x, out)                      out[f] = sum over a, b of x[a, f, b]
    channel_dot(x, z, out)                   out[f] = sum over a, b of x * z
    channel_abs_mean(w, out)                 out[f] = mean over a, b of |w[a, f, b]|
    channel_abs_mean_backward(dalpha, w, dw) dw += dalpha[f] * sgn(w) / (A*B)

channel_abs_mean is the XNOR-Net scale alpha (Rastegari et al. 2016, sec.
3.1); its backward uses sgn(0) = 0, the subgradient of |w| at 0.
Element-wise kernels accept the output as one of the inputs (in place).

clip_sign_forward is what a binary layer does to its latent weights in every
forward: clip in place, binarize and, with XNOR-Net scaling, the scale, fused
into one pass over W instead of two or three.
"""
import numpy as np
from numba import njit

from cdl.kernels.parallel import run_slices


# Slices as 0-based views: LLVM vectorizes these loops (see cdl.kernels.activation).
@njit(nogil=True, cache=True)
def _sign(x, y, a, z):
    xs, ys = x[a:z], y[a:z]
    for i in range(xs.size):
        ys[i] = 1 if xs[i] >= 0 else -1


@njit(nogil=True, cache=True)
def _ste(dout, x, dx, a, z):
    gs, xs, dxs = dout[a:z], x[a:z], dx[a:z]
    for i in range(gs.size):
        g = gs[i]
        dxs[i] = g if abs(xs[i]) <= 1 else g - g  # g - g: 0, or NaN for a non-finite g


# The fused weight pass, in place. Without a scale, a weight already in [lo, hi] is not
# stored again: after the first step only the few an update pushed past +-1 are, so the
# pass writes y alone.
@njit(nogil=True, cache=True)
def _clip_sign(w, lo, hi, y, a, z):
    ws, ys = w[a:z], y[a:z]
    for i in range(ws.size):
        v = ws[i]
        if v < lo:
            ws[i] = lo
        elif v > hi:
            ws[i] = hi
        ys[i] = 1 if v >= 0 else -1  # the sign of v is that of its clipped value


# With the scale: the sums of |w| accumulate in w's dtype, as NumPy's mean over an axis
# does. (A variant writing the clipped values to another array than w ran 4x slower:
# LLVM gave up vectorizing, so the wrapper copies w there first.)
@njit(nogil=True, cache=True)
def _clip_sign_cols(w, lo, hi, y, alpha, f0, f1):
    """(A, F) views, columns [f0, f1): alpha[f] = mean over the rows (BinaryAffine's W)."""
    A, n = w.shape[0], f1 - f0
    acc = np.zeros(n, w.dtype)
    for r in range(A):
        ws, ys = w[r, f0:f1], y[r, f0:f1]
        for i in range(n):
            v = ws[i]
            c = lo if v < lo else (hi if v > hi else v)  # NaN: neither, stays NaN
            ws[i] = c
            ys[i] = 1 if c >= 0 else -1
            acc[i] += abs(c)
    for i in range(n):
        alpha[f0 + i] = acc[i] / A


@njit(nogil=True, cache=True)
def _clip_sign_rows(w, lo, hi, y, alpha, f0, f1):
    """(A, F, B) views, channels [f0, f1): alpha[f] = mean over a and b (conv weights)."""
    A, B = w.shape[0], w.shape[2]
    for f in range(f0, f1):
        acc = 0.0
        for r in range(A):
            ws, ys = w[r, f], y[r, f]
            for i in range(B):
                v = ws[i]
                c = lo if v < lo else (hi if v > hi else v)
                ws[i] = c
                ys[i] = 1 if c >= 0 else -1
                acc += abs(c)
        alpha[f] = acc / (A * B)


@njit(nogil=True, cache=True)
def _abs_mean_backward_cols(dalpha, w, dw, f0, f1):
    """(A, F) views, columns [f0, f1): dw += dalpha[f] * sgn(w) / A."""
    A = w.shape[0]
    for r in range(A):
        ws, ds, gs = w[r, f0:f1], dw[r, f0:f1], dalpha[f0:f1]
        for i in range(ws.size):
            v, g = ws[i], gs[i] / A
            ds[i] += g if v > 0 else (-g if v < 0 else g * (v - v))  # sgn(0) = 0, NaN stays


@njit(nogil=True, cache=True)
def _abs_mean_backward_rows(dalpha, w, dw, f0, f1):
    """(A, F, B) views, channels [f0, f1): dw += dalpha[f] * sgn(w) / (A*B)."""
    A, B = w.shape[0], w.shape[2]
    for f in range(f0, f1):
        g = dalpha[f] / (A * B)
        for r in range(A):
            ws, ds = w[r, f], dw[r, f]
            for i in range(B):
                v = ws[i]
                ds[i] += g if v > 0 else (-g if v < 0 else g * (v - v))


def sign_forward(x, y):
    """y = +1 where x >= 0, else -1 (NaN: -1), element-wise; x, y C-contiguous, same size."""
    xf, yf = x.reshape(-1), y.reshape(-1)
    run_slices(lambda a, z: _sign(xf, yf, a, z), xf.size, work=xf.size)
    return y


def stochastic_sign_forward(x, rng, y):
    """y = +1 with probability hard_sigmoid(x) = clip((x + 1) / 2, 0, 1), else -1 (BNN eq. 2).

    Draws x.size uniforms of x's dtype from rng (a numpy Generator).
    """
    u = rng.random(x.shape, dtype=x.dtype)
    p = np.clip((x + 1) * 0.5, 0.0, 1.0)
    y[...] = np.where(u < p, 1, -1)
    return y


def ste_backward(dout, x, dx):
    """dx = dout where |x| <= 1, else 0 (the straight-through estimator); dx may be dout."""
    gf, xf, dxf = dout.reshape(-1), x.reshape(-1), dx.reshape(-1)
    run_slices(lambda a, z: _ste(gf, xf, dxf, a, z), gf.size, work=gf.size)
    return dx


def clip(w, lo, hi, out):
    """out = min(max(w, lo), hi) element-wise (NaN stays NaN); out may be w."""
    np.clip(w, lo, hi, out=out)
    return out


def clip_sign_forward(w, lo, hi, out, y, alpha):
    """out = clip(w, lo, hi), y = sign(out) (+1 where out >= 0, NaN: -1) and, unless alpha
    is None, alpha (F,) = mean of |out| over a and b, in one pass over w (A, F, B), out and
    y C-contiguous. out may be w (in place, what the layers do; otherwise w is copied to
    out first). Returns y."""
    t = w.dtype.type
    lo, hi = t(lo), t(hi)
    if out is not w:
        np.copyto(out, w)
    if alpha is None:
        of, yf = out.reshape(-1), y.reshape(-1)
        run_slices(lambda a, z: _clip_sign(of, lo, hi, yf, a, z), of.size, work=of.size)
        return y
    A, F, B = out.shape
    if B == 1:  # (in, out, 1): columns side by side, summed down the rows
        o2, y2 = out.reshape(A, F), y.reshape(A, F)
        run_slices(lambda a, z: _clip_sign_cols(o2, lo, hi, y2, alpha, a, z), F, work=out.size)
    else:
        run_slices(lambda a, z: _clip_sign_rows(out, lo, hi, y, alpha, a, z), F,
                   work=out.size)
    return y


def _channels(a):
    return a.reshape(1, -1, 1)


def channel_scale_shift(x, alpha, b, y):
    """y (A, F, B) = x * alpha[f] + b[f]; alpha or b None: left out. y may be x."""
    if alpha is not None:
        np.multiply(x, _channels(alpha), out=y)
    elif y is not x:
        np.copyto(y, x)
    if b is not None:
        np.add(y, _channels(b), out=y)
    return y


def channel_sum(x, out):
    """out (F,) = x (A, F, B) summed over a and b."""
    np.sum(x, axis=(0, 2), out=out)
    return out


def channel_dot(x, z, out):
    """out (F,) = (x * z) summed over a and b; x, z (A, F, B)."""
    np.sum(x * z, axis=(0, 2), out=out)
    return out


def channel_abs_mean(w, out):
    """out (F,) = mean of |w| over a and b; w (A, F, B). The XNOR-Net scale per output."""
    np.mean(np.abs(w), axis=(0, 2), out=out)
    return out


def channel_abs_mean_backward(dalpha, w, dw):
    """dw (A, F, B) += dalpha[f] * sgn(w) / (A*B): the gradient of channel_abs_mean, added."""
    A, F, B = w.shape
    if B == 1:
        w2, d2 = w.reshape(A, F), dw.reshape(A, F)
        run_slices(lambda a, z: _abs_mean_backward_cols(dalpha, w2, d2, a, z), F,
                   work=w.size)
    else:
        run_slices(lambda a, z: _abs_mean_backward_rows(dalpha, w, dw, a, z), F,
                   work=w.size)
    return dw


__all__ = ["sign_forward", "stochastic_sign_forward", "ste_backward", "clip", "clip_sign_forward",
           "channel_scale_shift", "channel_sum", "channel_dot", "channel_abs_mean",
           "channel_abs_mean_backward"]
