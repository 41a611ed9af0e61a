"""Direct convolution for layers with few input channels: no im2col, no BLAS.

A first layer (1 to 3 input channels) gives im2col + GEMM a tiny inner
dimension C*KH*KW (9 for one channel and a 3x3 kernel): the GEMMs run far
below peak and the time goes to writing, reordering and reading copies of
the data. Here each tap of the kernel is one pass of a long, contiguous,
vectorized loop instead.

Wide rows. For stride 1, output pixel (r, c) reads the padded input at
(r + i, c + j). Lay the padded input plane out flat with row length Wp: then
output (r, c) at flat index r*Wp + c reads index r*Wp + c + (i*Wp + j), so
a whole output plane, computed on rows of length Wp ("wide" rows whose last
KW - 1 entries are discarded), is one sum over taps of shifted contiguous
slices: wide[0:L] += W[f, ch, i, j] * xpad[ch, i*Wp + j : i*Wp + j + L].

Phases. For stride (SH, SW) the input is first split into SH*SW phase planes,
phase (p, q) holding xpad[Y*SH + p, X*SW + q]; tap (i, j) then reads phase
(i % SH, j % SW) at offset (i // SH, j // SW), and the stride-1 scheme above
applies on each phase plane (row length Wq = OW + (KW - 1) // SW). Stride 1
is the case of a single phase, the padded input.

Passes. Each pass over an output plane carries four taps and two output
channels (_gather2): per element it loads four input values, feeds each to two
FMAs, and loads and stores two sums, so it runs at about the FMA rate instead
of at the store rate of one tap per pass.

Backward. dout[n] goes into wide rows (zeros in the discarded columns). db[f]
is its sum; dW[f, c, i, j] is its dot product with the tap's input slice
(_dots2: two channels, two taps per pass). dx is a convolution of it too, in
gather form: each phase plane of dx sums, over output channels f and the taps
that read that phase, W[f, c, i, j] times dout[n, f] shifted back by the tap's
offset (gather_lists), input channels in pairs; then dx is read back out of
the phase planes. For one sample every pass stays in L1 or L2.

The reductions (dot products, sums) are compiled with fastmath "reassoc"
(and "contract" for FMAs) so that LLVM vectorizes them; NaN and Inf still
propagate (no "nnan"/"ninf").
"""
import numpy as np
from numba import njit

_FAST = {"reassoc", "contract"}

# Vectorized loops run over whole multiples of _VEC elements (two AVX2 vectors of float32):
# buffers are padded so that no scalar remainder loop runs, which on a 16x16 output plane
# (wide length 286) cost 30 % of the time.
_VEC = 16


@njit(cache=True, inline="always")
def _round_up(n):
    return (n + _VEC - 1) // _VEC * _VEC


def phase_geometry(w_shape, stride, out_hw):
    """(Hq, Wq, L): phase-plane rows and row length, and the wide length of an output plane."""
    (kh, kw), (sh, sw), (oh, ow) = w_shape[2:], stride, out_hw
    hq, wq = oh + (kh - 1) // sh, ow + (kw - 1) // sw
    return hq, wq, (oh - 1) * wq + ow


@njit(nogil=True, cache=True)
def _to_phases(x, n, sh, sw, ph, pw, hq, wq, xph):
    """xph[(c*SH + p)*SW + q, Y*Wq + X] = x[n, c, Y*SH + p - PH, X*SW + q - PW], 0 outside x."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    for c in range(C):
        for p in range(sh):
            for q in range(sw):
                plane = xph[(c * sh + p) * sw + q]
                x0 = max(0, -((q - pw) // sw))           # first X with X*SW + q - PW >= 0
                x1 = min(wq, (W - 1 - q + pw) // sw + 1)  # past the last X inside the row
                for Y in range(hq):
                    r = Y * sh + p - ph
                    dst = plane[Y * wq:(Y + 1) * wq]
                    for X in range(wq):
                        dst[X] = 0
                    if 0 <= r < H and x0 < x1:
                        src = x[n, c, r]
                        for X in range(x0, x1):
                            dst[X] = src[X * sw + q - pw]


@njit(nogil=True, cache=True)
def _from_phases(dxph, n, sh, sw, ph, pw, hq, wq, dx):
    """dx[n, c, r, col] = dxph[(c*SH + p)*SW + q, Y*Wq + X] where r = Y*SH + p - PH and
    col = X*SW + q - PW; pixels no window reaches get 0. The adjoint of _to_phases."""
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    for c in range(C):
        for r in range(H):
            row = dx[n, c, r]
            for col in range(W):
                row[col] = 0
        for p in range(sh):
            for q in range(sw):
                plane = dxph[(c * sh + p) * sw + q]
                x0 = max(0, -((q - pw) // sw))
                x1 = min(wq, (W - 1 - q + pw) // sw + 1)
                for Y in range(hq):
                    r = Y * sh + p - ph
                    if 0 <= r < H and x0 < x1:
                        src, dst = plane[Y * wq:(Y + 1) * wq], dx[n, c, r]
                        for X in range(x0, x1):
                            dst[X * sw + q - pw] = src[X]


def taps(C, kh, kw, sh, sw, wq):
    """Per tap t = (c*KH + i)*KW + j of the kernel: the phase plane it reads, c*SH*SW +
    (i % SH)*SW + j % SW, and its offset in that plane, (i // SH)*Wq + j // SW."""
    c, i, j = np.unravel_index(np.arange(C * kh * kw), (C, kh, kw))
    return c * (sh * sw) + (i % sh) * sw + j % sw, (i // sh) * wq + j // sw


@njit(nogil=True, cache=True, inline="always")
def _gather2(w, v, planes, offs, src, y, u):
    """y += sum_t w[t] * src[planes[t], offs[t]:][:len(y)], and u likewise with weights v.

    Taps go four at a time, so that each pass over y and u (a load and a store per
    element) carries eight FMAs, and each source element loaded feeds two of them.
    """
    n, T = y.shape[0], w.shape[0]
    for t in range(0, T - 3, 4):
        x0 = src[planes[t], offs[t]:offs[t] + n]
        x1 = src[planes[t + 1], offs[t + 1]:offs[t + 1] + n]
        x2 = src[planes[t + 2], offs[t + 2]:offs[t + 2] + n]
        x3 = src[planes[t + 3], offs[t + 3]:offs[t + 3] + n]
        w0, w1, w2, w3 = w[t], w[t + 1], w[t + 2], w[t + 3]
        v0, v1, v2, v3 = v[t], v[t + 1], v[t + 2], v[t + 3]
        for k in range(n):
            a, b, c, d = x0[k], x1[k], x2[k], x3[k]
            y[k] += w0 * a + w1 * b + w2 * c + w3 * d
            u[k] += v0 * a + v1 * b + v2 * c + v3 * d
    for t in range(T - T % 4, T):
        x0, w0, v0 = src[planes[t], offs[t]:offs[t] + n], w[t], v[t]
        for k in range(n):
            y[k] += w0 * x0[k]
            u[k] += v0 * x0[k]


@njit(nogil=True, cache=True, inline="always")
def _gather1(w, planes, offs, src, y):
    """y += sum_t w[t] * src[planes[t], offs[t]:][:len(y)]: _gather2 for one output."""
    n, T = y.shape[0], w.shape[0]
    for t in range(0, T - 3, 4):
        x0 = src[planes[t], offs[t]:offs[t] + n]
        x1 = src[planes[t + 1], offs[t + 1]:offs[t + 1] + n]
        x2 = src[planes[t + 2], offs[t + 2]:offs[t + 2] + n]
        x3 = src[planes[t + 3], offs[t + 3]:offs[t + 3] + n]
        w0, w1, w2, w3 = w[t], w[t + 1], w[t + 2], w[t + 3]
        for k in range(n):
            y[k] += w0 * x0[k] + w1 * x1[k] + w2 * x2[k] + w3 * x3[k]
    for t in range(T - T % 4, T):
        x0, w0 = src[planes[t], offs[t]:offs[t] + n], w[t]
        for k in range(n):
            y[k] += w0 * x0[k]


@njit(nogil=True, cache=True, inline="always")
def _dots1(d, planes, offs, src, g):
    """g[t] += d . src[planes[t], offs[t]:][:len(d)] for every tap t: _dots2 for one output,
    four taps at a time."""
    n, T = d.shape[0], g.shape[0]
    for t in range(0, T - 3, 4):
        x0 = src[planes[t], offs[t]:offs[t] + n]
        x1 = src[planes[t + 1], offs[t + 1]:offs[t + 1] + n]
        x2 = src[planes[t + 2], offs[t + 2]:offs[t + 2] + n]
        x3 = src[planes[t + 3], offs[t + 3]:offs[t + 3] + n]
        g0 = g1 = g2 = g3 = d.dtype.type(0)
        for k in range(n):
            g0 += d[k] * x0[k]
            g1 += d[k] * x1[k]
            g2 += d[k] * x2[k]
            g3 += d[k] * x3[k]
        g[t] += g0
        g[t + 1] += g1
        g[t + 2] += g2
        g[t + 3] += g3
    for t in range(T - T % 4, T):
        x0, g0 = src[planes[t], offs[t]:offs[t] + n], d.dtype.type(0)
        for k in range(n):
            g0 += d[k] * x0[k]
        g[t] += g0


@njit(nogil=True, cache=True, inline="always")
def _dots2(d, e, planes, offs, src, g, h):
    """g[t] += d . src[planes[t], offs[t]:][:len(d)] for every tap t, and h likewise with e.

    Two taps at a time: four reductions per pass, each source element loaded feeds two.
    """
    n, T = d.shape[0], g.shape[0]
    for t in range(0, T - 1, 2):
        x0 = src[planes[t], offs[t]:offs[t] + n]
        x1 = src[planes[t + 1], offs[t + 1]:offs[t + 1] + n]
        g0 = g1 = h0 = h1 = d.dtype.type(0)
        for k in range(n):
            a, b = x0[k], x1[k]
            g0 += d[k] * a
            g1 += d[k] * b
            h0 += e[k] * a
            h1 += e[k] * b
        g[t] += g0
        g[t + 1] += g1
        h[t] += h0
        h[t + 1] += h1
    if T % 2:
        x0, g0, h0 = src[planes[T - 1], offs[T - 1]:offs[T - 1] + n], d.dtype.type(0), d.dtype.type(0)
        for k in range(n):
            g0 += d[k] * x0[k]
            h0 += e[k] * x0[k]
        g[T - 1] += g0
        h[T - 1] += h0


@njit(nogil=True, cache=True)
def _wide_rows(plane, wq, out):
    """out[r*Wq + k] = plane[r, k] for the rows of an (OH, OW) plane; the rest of out untouched."""
    ow = plane.shape[1]
    for r in range(plane.shape[0]):
        src, dst = plane[r], out[r * wq:r * wq + ow]
        for k in range(ow):
            dst[k] = src[k]


@njit(nogil=True, cache=True)
def _narrow_rows(wide, wq, plane):
    """plane[r, k] = wide[r*Wq + k]: the valid columns of wide rows back into an (OH, OW) plane."""
    ow = plane.shape[1]
    for r in range(plane.shape[0]):
        src, dst = wide[r * wq:r * wq + ow], plane[r]
        for k in range(ow):
            dst[k] = src[k]


@njit(nogil=True, cache=True, fastmath=_FAST)
def forward_slice(x, Wt, b, planes, offs, sh, sw, ph, pw, hq, wq, y, a, z):
    """y[a:z] = conv(x[a:z]) + b for y (N, F, OH, OW): Wt (F, T) the kernel by tap, b (F,),
    planes and offs (T,) from taps, (hq, wq) from phase_geometry. Output channels go in
    pairs."""
    C, F = x.shape[1], Wt.shape[0]
    oh, ow = y.shape[2], y.shape[3]
    L = (oh - 1) * wq + ow
    xph = np.zeros((C * sh * sw, hq * wq + _VEC), dtype=x.dtype)  # the tail stays 0
    wide = np.empty((2, _round_up(L)), dtype=x.dtype)
    for n in range(a, z):
        _to_phases(x, n, sh, sw, ph, pw, hq, wq, xph)
        for f in range(0, F - 1, 2):
            wide[0, :] = b[f]
            wide[1, :] = b[f + 1]
            _gather2(Wt[f], Wt[f + 1], planes, offs, xph, wide[0], wide[1])
            _narrow_rows(wide[0], wq, y[n, f])
            _narrow_rows(wide[1], wq, y[n, f + 1])
        if F % 2:
            wide[0, :] = b[F - 1]
            _gather1(Wt[F - 1], planes, offs, xph, wide[0])
            _narrow_rows(wide[0], wq, y[n, F - 1])


def gather_lists(W, stride, wq):
    """How backward_slice gathers dx, for W (F, C, KH, KW): entries e = (tap, f) ordered by
    the phase the tap reads, each with its row of dpad (f) and its offset there (P0 minus
    the tap's offset, P0 the largest tap offset); starts (SH*SW + 1,) delimits the phases,
    and Gw (C, E) holds the weights, Gw[c, e] = W[f, c, tap]."""
    F, C, kh, kw = W.shape
    (sh, sw), kk = stride, kh * kw
    i, j = np.unravel_index(np.arange(kk), (kh, kw))
    phase, off = (i % sh) * sw + j % sw, (i // sh) * wq + j // sw
    tap = np.repeat(np.argsort(phase, kind="stable"), F)
    rows = np.tile(np.arange(F), kk)
    starts = np.concatenate([[0], np.cumsum(np.bincount(phase, minlength=sh * sw) * F)])
    Gw = np.ascontiguousarray(W.reshape(F, C, kk)[rows, :, tap].T)
    return Gw, rows, off.max() - off[tap], starts


@njit(nogil=True, cache=True, fastmath=_FAST)
def backward_slice(dout, x, Wt, planes, offs, Gw, rows, goffs, starts, sh, sw, ph, pw, hq, wq,
                   dx, dWt, db, a, z):
    """dx[a:z] for samples a..z-1; adds their dW (F, T) and db (F,) into dWt and db.

    dout[n] goes into dpad as wide rows behind P0 zeros (P0 = max(offs)). Then per
    pair of output channels: db, and dW by dot products with the taps' input slices.
    dx runs in gather form, as a convolution of dpad: phase plane r of input channel
    c collects Gw[c, e] * dpad[rows[e], goffs[e]:] over the entries e of phase r
    (gather_lists), input channels in pairs; then _from_phases reads dx out.
    """
    C, F = x.shape[1], Wt.shape[0]
    oh, ow = dout.shape[2], dout.shape[3]
    S, P0 = sh * sw, offs.max()
    Lp = _round_up((oh - 1) * wq + ow)
    xph = np.zeros((C * S, hq * wq + _VEC), dtype=x.dtype)  # the tail stays 0
    dxph = np.empty((C * S, _round_up(hq * wq)), dtype=x.dtype)
    dpad = np.zeros((F, P0 + dxph.shape[1]), dtype=x.dtype)  # 0 outside dout's wide rows
    for n in range(a, z):
        _to_phases(x, n, sh, sw, ph, pw, hq, wq, xph)
        for f in range(F):
            d = dpad[f, P0:P0 + Lp]
            _wide_rows(dout[n, f], wq, d)
            s = db.dtype.type(0)
            for k in range(Lp):
                s += d[k]
            db[f] += s
        for f in range(0, F - 1, 2):
            _dots2(dpad[f, P0:P0 + Lp], dpad[f + 1, P0:P0 + Lp], planes, offs, xph,
                   dWt[f], dWt[f + 1])
        if F % 2:
            _dots1(dpad[F - 1, P0:P0 + Lp], planes, offs, xph, dWt[F - 1])
        dxph[...] = 0
        for r in range(S):
            e0, e1 = starts[r], starts[r + 1]
            for c in range(0, C - 1, 2):
                _gather2(Gw[c, e0:e1], Gw[c + 1, e0:e1], rows[e0:e1], goffs[e0:e1], dpad,
                         dxph[c * S + r], dxph[(c + 1) * S + r])
            if C % 2:
                _gather1(Gw[C - 1, e0:e1], rows[e0:e1], goffs[e0:e1], dpad, dxph[(C - 1) * S + r])
        _from_phases(dxph, n, sh, sw, ph, pw, hq, wq, dx)
