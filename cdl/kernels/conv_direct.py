"""Direct convolution: no im2col, no BLAS; for few input channels or large planes.

A first layer (1 to 3 input channels) gives im2col + GEMM a tiny inner
dimension C*KH*KW (9 for one channel and a 3x3 kernel): the GEMMs run far
below peak and the time goes to writing, reordering and reading copies of
the data. Here each tap of the kernel is one pass of a long, contiguous,
vectorized loop instead, at about the FMA rate of the core, which on wide
output rows can beat im2col + GEMM with more channels too (the thresholds
of cdl.kernels.conv.choose_algorithm; bench/conv.py --algos measures them).

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

Passes. Each pass over an output plane carries four taps and four output
channels (_gather4): per element it loads four input values, feeds each to four
FMAs, and loads and stores four sums, so it runs at about the FMA rate instead
of at the load and store rate of one tap per pass. A last block of fewer than
four output channels runs as a whole block with zero weights in the missing
rows: one pass function fewer to compile on first use, for a few wasted
multiply-adds on the last block only.

Backward. dout[n] goes into wide rows (zeros in the discarded columns). db[f]
is its sum; dW[f, c, i, j] is its dot product with the tap's input slice
(_dots2: two channels, four taps per pass). dx is a convolution of it too, in
gather form: each phase plane of dx sums, over output channels f and the taps
that read that phase, W[f, c, i, j] times dout[n, f] shifted back by the tap's
offset (gather_lists), input channels four at a time, the last C % 4 one by
one (_gather1: with C = 1, a zero-padded block would do four times the work);
then dx is read back out of the phase planes. For one sample every pass stays
in L1 or L2.

The reductions (dot products, sums) are compiled with fastmath "reassoc"
(and "contract" for FMAs) so that LLVM vectorizes them; NaN and Inf still
propagate (no "nnan"/"ninf").
"""
import numpy as np
from numba import njit

_FAST = {"reassoc", "contract"}

# Vectorized loops run over whole multiples of _VEC elements (two AVX2 vectors of float32):
# buffers are padded so that no scalar remainder loop runs (on small output planes, such
# a remainder is a large share of each pass).
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
    """xph[p*SW + q, c, Y*Wq + X] = x[n, c, Y*SH + p - PH, X*SW + q - PW], 0 outside x."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    for p in range(sh):
        for q in range(sw):
            x0 = max(0, -((q - pw) // sw))           # first X with X*SW + q - PW >= 0
            x1 = min(wq, (W - 1 - q + pw) // sw + 1)  # past the last X inside the row
            for c in range(C):
                plane = xph[p * sw + q, c]
                for Y in range(hq):
                    r, dst = Y * sh + p - ph, plane[Y * wq:(Y + 1) * wq]
                    if r < 0 or r >= H or x0 >= x1:
                        dst[:] = 0
                        continue
                    dst[:x0] = 0
                    dst[x1:] = 0
                    if sw == 1:  # a contiguous run: a vectorized copy
                        src = x[n, c, r, x0 + q - pw:x1 + q - pw]
                        for X in range(x1 - x0):
                            dst[x0 + X] = src[X]
                    else:
                        src = x[n, c, r]
                        for X in range(x0, x1):
                            dst[X] = src[X * sw + q - pw]


@njit(nogil=True, cache=True)
def _from_phases(dxph, n, sh, sw, ph, pw, hq, wq, dx):
    """dx[n, c, r, col] = dxph[p*SW + q, c, Y*Wq + X] where r = Y*SH + p - PH and
    col = X*SW + q - PW; pixels no window reaches get 0. The adjoint of _to_phases."""
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    for c in range(C):
        for r in range(H):
            row = dx[n, c, r]
            for col in range(W):
                row[col] = 0
    for p in range(sh):
        for q in range(sw):
            x0 = max(0, -((q - pw) // sw))
            x1 = min(wq, (W - 1 - q + pw) // sw + 1)
            for c in range(C):
                plane = dxph[p * sw + q, c]
                for Y in range(hq):
                    r = Y * sh + p - ph
                    if 0 <= r < H and x0 < x1:
                        src, dst = plane[Y * wq:(Y + 1) * wq], dx[n, c, r]
                        for X in range(x0, x1):
                            dst[X * sw + q - pw] = src[X]


def taps(C, kh, kw, sh, sw, wq):
    """Per tap t = (c*KH + i)*KW + j of the kernel: the plane of the phase-split input it
    reads, ((i % SH)*SW + j % SW)*C + c, and its offset in that plane, (i // SH)*Wq + j // SW."""
    c, i, j = np.unravel_index(np.arange(C * kh * kw), (C, kh, kw))
    return ((i % sh) * sw + j % sw) * C + c, (i // sh) * wq + j // sw


# The passes. Y[r] += sum_t W[r, t] * src[planes[t], offs[t]:][:n] for a block of 4 output
# rows r (_gather4; _gather1 for one), taps four at a time; and G[r, t] += D[r] .
# src[planes[t], offs[t]:][:n] for a block of 2 rows (_dots2), taps four at a time. Each
# source element loaded feeds one FMA per row, so wider blocks do more FMAs per load and
# store (a tap-at-a-time axpy does one; bench/conv.py --algos times the result).

@njit(nogil=True, cache=True, inline="always")
def _tap(src, planes, offs, t, n):
    """The n source values tap t reads: src[planes[t], offs[t]:offs[t] + n]."""
    return src[planes[t], offs[t]:offs[t] + n]


@njit(nogil=True, cache=True, inline="always")
def _taps4(src, planes, offs, t, n):
    """_tap for taps t..t+3."""
    return (_tap(src, planes, offs, t, n), _tap(src, planes, offs, t + 1, n),
            _tap(src, planes, offs, t + 2, n), _tap(src, planes, offs, t + 3, n))


# The pass functions are compiled once each and shared by forward and backward (Numba
# still optimizes a callee again inside each caller's module, so the fewer pass variants
# and wrapper levels, the shorter the first call). Their arrays are C-contiguous, whole
# rows with an offset saying where to start: on a strided view LLVM cannot vectorize the
# inner loops. Copies and sums in these kernels are written as loops: NumPy-style slice
# assignment, in-place array arithmetic and .max() each compile several times slower.

@njit(nogil=True, cache=True, fastmath=_FAST)
def _gather4(W, e0, planes, offs, src, Y, i):
    """Y[i + r] += sum_t W[r, e0 + t] * src[planes[t], offs[t]:][:n], r < 4."""
    n, T = Y.shape[1], planes.shape[0]
    y0, y1, y2, y3 = Y[i], Y[i + 1], Y[i + 2], Y[i + 3]
    w0, w1, w2, w3 = W[0, e0:e0 + T], W[1, e0:e0 + T], W[2, e0:e0 + T], W[3, e0:e0 + T]
    for t in range(0, T - 3, 4):
        a, b, c, d = _taps4(src, planes, offs, t, n)
        a0, b0, c0, d0 = w0[t], w0[t + 1], w0[t + 2], w0[t + 3]
        a1, b1, c1, d1 = w1[t], w1[t + 1], w1[t + 2], w1[t + 3]
        a2, b2, c2, d2 = w2[t], w2[t + 1], w2[t + 2], w2[t + 3]
        a3, b3, c3, d3 = w3[t], w3[t + 1], w3[t + 2], w3[t + 3]
        for k in range(n):
            ak, bk, ck, dk = a[k], b[k], c[k], d[k]
            y0[k] += a0 * ak + b0 * bk + c0 * ck + d0 * dk
            y1[k] += a1 * ak + b1 * bk + c1 * ck + d1 * dk
            y2[k] += a2 * ak + b2 * bk + c2 * ck + d2 * dk
            y3[k] += a3 * ak + b3 * bk + c3 * ck + d3 * dk
    for t in range(T - T % 4, T):
        a = _tap(src, planes, offs, t, n)
        a0, a1, a2, a3 = w0[t], w1[t], w2[t], w3[t]
        for k in range(n):
            y0[k] += a0 * a[k]
            y1[k] += a1 * a[k]
            y2[k] += a2 * a[k]
            y3[k] += a3 * a[k]


@njit(nogil=True, cache=True, fastmath=_FAST)
def _gather1(W, e0, planes, offs, src, Y, i):
    """_gather4 for one row: the last C % 4 input channels of dx (padded to a block of four,
    they would cost up to four times as many multiply-adds as they need)."""
    n, T = Y.shape[1], planes.shape[0]
    y0, w0 = Y[i], W[0, e0:e0 + T]
    for t in range(0, T - 3, 4):
        a, b, c, d = _taps4(src, planes, offs, t, n)
        a0, b0, c0, d0 = w0[t], w0[t + 1], w0[t + 2], w0[t + 3]
        for k in range(n):
            y0[k] += a0 * a[k] + b0 * b[k] + c0 * c[k] + d0 * d[k]
    for t in range(T - T % 4, T):
        a, a0 = _tap(src, planes, offs, t, n), w0[t]
        for k in range(n):
            y0[k] += a0 * a[k]


@njit(nogil=True, cache=True, fastmath=_FAST)
def _dots2(D, f, d0, n, planes, offs, src, G):
    """G[f + r, t] += D[f + r, d0:d0 + n] . src[planes[t], offs[t]:][:n] for r < 2 and
    every tap t."""
    T = G.shape[1]
    d, e, g, h = D[f, d0:d0 + n], D[f + 1, d0:d0 + n], G[f], G[f + 1]
    for t in range(0, T - 3, 4):
        a, b, c, q = _taps4(src, planes, offs, t, n)
        g0 = g1 = g2 = g3 = h0 = h1 = h2 = h3 = d.dtype.type(0)
        for k in range(n):
            ak, bk, ck, qk = a[k], b[k], c[k], q[k]
            g0 += d[k] * ak
            g1 += d[k] * bk
            g2 += d[k] * ck
            g3 += d[k] * qk
            h0 += e[k] * ak
            h1 += e[k] * bk
            h2 += e[k] * ck
            h3 += e[k] * qk
        g[t] += g0
        g[t + 1] += g1
        g[t + 2] += g2
        g[t + 3] += g3
        h[t] += h0
        h[t + 1] += h1
        h[t + 2] += h2
        h[t + 3] += h3
    for t in range(T - T % 4, T):
        a, g0, h0 = _tap(src, planes, offs, t, n), d.dtype.type(0), d.dtype.type(0)
        for k in range(n):
            g0 += d[k] * a[k]
            h0 += e[k] * a[k]
        g[t] += g0
        h[t] += h0


@njit(nogil=True, cache=True)
def _dots(D, d0, n, planes, offs, src, G):
    """_dots2 over every pair of rows of G (an even number). A function of its own rather
    than a loop in backward_slice: LLVM then keeps _dots2 out of line, which runs a first
    layer's dW pass (one input channel, 3x3) faster than _dots2 inlined there."""
    for f in range(0, G.shape[0], 2):
        _dots2(D, f, d0, n, planes, offs, src, G)


@njit(nogil=True, cache=True)
def _padded_rows(A, R):
    """A (r, k) followed by zero rows up to R rows, as a new C-contiguous array."""
    out = np.zeros((R, A.shape[1]), dtype=A.dtype)
    for r in range(A.shape[0]):
        src, dst = A[r], out[r]
        for k in range(A.shape[1]):
            dst[k] = src[k]
    return out


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
    planes and offs (T,) from taps, (hq, wq) from phase_geometry."""
    C, F = x.shape[1], Wt.shape[0]
    oh, ow = y.shape[2], y.shape[3]
    L = (oh - 1) * wq + ow
    xph = np.zeros((sh * sw, C, hq * wq + _VEC), dtype=x.dtype)  # the tails stay 0
    planes_in = xph.reshape(sh * sw * C, hq * wq + _VEC)
    F4 = (F + 3) // 4 * 4  # whole blocks of 4 filters: zero rows past F
    W4 = _padded_rows(Wt, F4)
    wide = np.empty((4, _round_up(L)), dtype=x.dtype)
    for n in range(a, z):
        _to_phases(x, n, sh, sw, ph, pw, hq, wq, xph)
        for f0 in range(0, F, 4):
            for i in range(4):
                wide[i, :] = b[f0 + i] if f0 + i < F else 0
            _gather4(W4[f0:f0 + 4], np.int64(0), planes, offs, planes_in, wide, np.int64(0))
            for i in range(min(4, F - f0)):
                _narrow_rows(wide[i], wq, y[n, f0 + i])


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
                   dx, with_dx, dWt, db, a, z):
    """dx[a:z] for samples a..z-1 (if with_dx); adds their dW (F, T) and db (F,) into dWt, db.

    dout[n] goes into dpad as wide rows behind P0 zeros (P0 = max(offs)). db sums
    them, dW takes their dot products with the taps' input slices, two output
    channels at a time. dx runs in gather form, as a convolution of dpad: phase
    plane r of input channel c collects Gw[c, e] * dpad[rows[e], goffs[e]:] over
    the entries e of phase r (gather_lists); then _from_phases reads dx out.
    """
    C, F, T = x.shape[1], Wt.shape[0], Wt.shape[1]
    oh, ow = dout.shape[2], dout.shape[3]
    S, P0 = sh * sw, offs[0]
    for t in range(1, offs.shape[0]):  # P0 = offs.max()
        P0 = max(P0, offs[t])
    Lp = _round_up((oh - 1) * wq + ow)
    xph = np.zeros((S, C, hq * wq + _VEC), dtype=x.dtype)  # the tails stay 0
    planes_in = xph.reshape(S * C, hq * wq + _VEC)
    F2 = (F + 1) // 2 * 2  # whole blocks of 2 output channels for dW: a zero row past F
    dpad = np.zeros((F2, P0 + _round_up(hq * wq)), dtype=x.dtype)  # 0 outside dout's rows
    G = np.zeros((F2, T), dtype=x.dtype)
    dxph = np.empty((S, C, _round_up(hq * wq)), dtype=x.dtype)
    for n in range(a, z):
        _to_phases(x, n, sh, sw, ph, pw, hq, wq, xph)
        for f in range(F):
            d = dpad[f, P0:P0 + Lp]
            _wide_rows(dout[n, f], wq, d)
            s = db.dtype.type(0)
            for k in range(Lp):
                s += d[k]
            db[f] += s
        _dots(dpad, P0, Lp, planes, offs, planes_in, G)
        if not with_dx:
            continue
        dxph[...] = 0
        for r in range(S):
            e0, e1 = starts[r], starts[r + 1]
            for c in range(0, C - 3, 4):
                _gather4(Gw[c:c + 4], e0, rows[e0:e1], goffs[e0:e1], dpad, dxph[r], c)
            for c in range(C - C % 4, C):
                _gather1(Gw[c:c + 1], e0, rows[e0:e1], goffs[e0:e1], dpad, dxph[r], c)
        _from_phases(dxph, n, sh, sw, ph, pw, hq, wq, dx)
    for f in range(F):
        src, dst = G[f], dWt[f]
        for k in range(T):
            dst[k] += src[k]
