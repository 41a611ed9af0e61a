"""Max and average pooling kernels over NCHW, parallel over slices of the batch.

Window (oh, ow) covers rows oh*SH - PH .. +KH and columns ow*SW - PW .. +KW,
clipped to the image. Max pooling treats padding as -inf (it never wins);
average pooling divides by the full window KH*KW, padding included
(PyTorch's default). Callers guarantee pad <= kernel // 2, so every window
holds a real pixel.

Max pooling keeps no argmax. Forward computes only the maxima; backward
routes dout[oh, ow] to the window's first pixel (row-major) equal to y[oh, ow],
or to its first NaN when y[oh, ow] is NaN, as np.argmax picks (ties: the
first maximum wins). A NaN anywhere in a window is propagated, as np.max and
PyTorch do.

Why: the argmax costs a data-dependent branch per pixel, about 90 % of the
forward time. The fast loops below are branch-free instead: one pass per
kernel offset (i, j) along an output row, so the iterations are independent,
with masks as arithmetic (q * (x == m)) rather than selects, which LLVM turns
back into unpredictable branches. They hold for planes without NaN (and,
backward, with finite dout: inf * 0 is NaN); other planes take an exact
per-window scan, slower but rare. 2x2 stride 2 without padding has unrolled
kernels that need no such check: NaN-propagating maxima that LLVM
vectorizes, and a backward that writes each dx pixel once through integer
masks on dout's bits (bits & -hit), which also keep inf and NaN in dout exact. Average
pooling uses the same passes (sums in float64, in the order a per-window
loop would take).

The public functions split the batch with cdl.kernels.parallel.run_slices
(one pool of threads for all of cdl's conv and pool kernels); the Numba
loops below handle samples n0 <= n < n1 serially and release the GIL.
Backward kernels overwrite dx: each (sample, channel) plane is zeroed and
filled while it is in cache, instead of a separate np.zeros pass (the 2x2
max-pool backward writes every pixel once and needs no zeroing). Loops run
over row views from 0 with unsigned offsets: signed indexes pay Numba's
negative-index wraparound on every access.
"""
import numpy as np
from numba import njit, uint64

from cdl.kernels.parallel import run_slices

_BITS = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


@njit(nogil=True, cache=True)
def _pmax(m, v):
    """max(m, v), NaN if either is NaN (m wins ties)."""
    return v if (v > m) | (v != v) else m


@njit(nogil=True, cache=True)
def _hit(v, m):
    """v is a window's maximum m, a NaN counting as equal to a NaN."""
    return (v == m) | ((m != m) & (v != v))


@njit(nogil=True, cache=True)
def _has_nan(a):
    """Any NaN in the C-contiguous 2-D plane a."""
    f = a.reshape(a.size)
    bad = False
    for k in range(f.size):
        bad |= f[k] != f[k]
    return bad


@njit(nogil=True, cache=True)
def _fast_backward_applies(yp, gp):
    """No NaN in the pooled plane yp (so none in any window) and all of dout's gp finite."""
    yf, gf = yp.reshape(yp.size), gp.reshape(gp.size)
    bad = False
    for k in range(yf.size):
        bad |= (yf[k] != yf[k]) | (gf[k] - gf[k] != 0)  # inf - inf and NaN - NaN are NaN
    return not bad


@njit(nogil=True, cache=True)
def _col_ranges(kw, sw, pw, W, OW):
    """lo, hi (KW,): the outputs ow whose column ow*sw + j - pw lies in [0, W), per j."""
    lo, hi = np.empty(kw, np.int64), np.empty(kw, np.int64)
    for j in range(kw):
        off = j - pw
        lo[j] = max(0, (sw - 1 - off) // sw)
        hi[j] = max(lo[j], min(OW, (W - 1 - off) // sw + 1))
    return lo, hi


@njit(nogil=True, cache=True, inline="always")
def _run_start(lo, j, sw, pw):
    """(first output ow, its input column) of kernel column j's run along a row, unsigned."""
    return uint64(lo[j]), uint64(lo[j] * sw + j - pw)


@njit(nogil=True, cache=True)
def _window_argmax(xp, i0, i1, j0, j1):
    """(i, j) of the first maximum of xp[i0:i1, j0:j1] in row-major order, or of its first NaN."""
    bi, bj, best = i0, j0, xp[i0, j0]
    for i in range(i0, i1):
        for j in range(j0, j1):
            v = xp[i, j]
            if v != v:
                return i, j
            if v > best:
                bi, bj, best = i, j, v
    return bi, bj


@njit(nogil=True, cache=True)
def _forward_plane_exact(xp, kh, kw, sh, sw, ph, pw, yp):
    H, W = xp.shape
    OH, OW = yp.shape
    for oh in range(OH):
        y0 = oh * sh - ph
        for ow in range(OW):
            x0 = ow * sw - pw
            i, j = _window_argmax(xp, max(y0, 0), min(y0 + kh, H), max(x0, 0), min(x0 + kw, W))
            yp[oh, ow] = xp[i, j]


@njit(nogil=True, cache=True)
def _forward_plane_fast(xp, kh, sh, sw, ph, pw, yp, lo, hi):
    """_forward_plane_exact for a plane without NaN: y row = max over (i, j) passes."""
    H = xp.shape[0]
    usw = uint64(sw)
    for oh in range(yp.shape[0]):
        y0 = oh * sh - ph
        yr = yp[oh]
        yr[:] = -np.inf
        for i in range(max(y0, 0), min(y0 + kh, H)):
            r = xp[i]
            for j in range(lo.size):
                a, base = _run_start(lo, j, sw, pw)
                for t in range(hi[j] - lo[j]):
                    u = uint64(t)
                    v, q = r[base + u * usw], yr[a + u]
                    yr[a + u] = v if v > q else q  # strict: the earlier of equal values stays


@njit(nogil=True, cache=True)
def _maxpool_forward(x, kh, kw, sh, sw, ph, pw, y, n0, n1):
    lo, hi = _col_ranges(kw, sw, pw, x.shape[3], y.shape[3])
    for n in range(n0, n1):
        for c in range(x.shape[1]):
            xp, yp = x[n, c], y[n, c]
            if _has_nan(xp):
                _forward_plane_exact(xp, kh, kw, sh, sw, ph, pw, yp)
            else:
                _forward_plane_fast(xp, kh, sh, sw, ph, pw, yp, lo, hi)


@njit(nogil=True, cache=True)
def _maxpool_forward_2x2(x, y, n0, n1):
    """_maxpool_forward for 2x2 windows, stride 2, no padding (every window inside the image)."""
    C = x.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    for n in range(n0, n1):
        for c in range(C):
            for oh in range(OH):
                r0, r1, yr = x[n, c, 2 * oh], x[n, c, 2 * oh + 1], y[n, c, oh]
                for t in range(OW):
                    yr[t] = _pmax(_pmax(_pmax(r0[2 * t], r0[2 * t + 1]), r1[2 * t]), r1[2 * t + 1])


@njit(nogil=True, cache=True)
def _backward_plane_exact(gp, xp, kh, kw, sh, sw, ph, pw, dp):
    H, W = xp.shape
    OH, OW = gp.shape
    dp[:] = 0
    for oh in range(OH):
        y0 = oh * sh - ph
        for ow in range(OW):
            x0 = ow * sw - pw
            i, j = _window_argmax(xp, max(y0, 0), min(y0 + kh, H), max(x0, 0), min(x0 + kw, W))
            dp[i, j] += gp[oh, ow]


@njit(nogil=True, cache=True)
def _backward_plane_fast(gp, xp, yp, kh, sh, sw, ph, pw, dp, rem, lo, hi):
    """_backward_plane_exact for a plane without NaN in y and with finite dout.

    rem[ow] holds the gradient still to route: in row-major (i, j) order the
    first pixel equal to the maximum takes it all (e = rem * 1) and leaves 0.
    """
    H = xp.shape[0]
    T = dp.dtype.type
    usw = uint64(sw)
    dp[:] = 0
    for oh in range(gp.shape[0]):
        y0 = oh * sh - ph
        m = yp[oh]
        rem[:] = gp[oh]
        for i in range(max(y0, 0), min(y0 + kh, H)):
            r, d = xp[i], dp[i]
            for j in range(lo.size):
                a, base = _run_start(lo, j, sw, pw)
                for t in range(hi[j] - lo[j]):
                    u = uint64(t)
                    col = base + u * usw
                    q = rem[a + u]
                    e = q * T(r[col] == m[a + u])
                    d[col] += e
                    rem[a + u] = q - e


@njit(nogil=True, cache=True)
def _maxpool_backward(dout, x, y, kh, kw, sh, sw, ph, pw, dx, n0, n1):
    rem = np.empty(dout.shape[3], dx.dtype)
    lo, hi = _col_ranges(kw, sw, pw, x.shape[3], dout.shape[3])
    for n in range(n0, n1):
        for c in range(x.shape[1]):
            gp, xp, yp, dp = dout[n, c], x[n, c], y[n, c], dx[n, c]
            if _fast_backward_applies(yp, gp):
                _backward_plane_fast(gp, xp, yp, kh, sh, sw, ph, pw, dp, rem, lo, hi)
            else:
                _backward_plane_exact(gp, xp, kh, kw, sh, sw, ph, pw, dp)


@njit(nogil=True, cache=True)
def _maxpool_backward_2x2(gbits, x, dxbits, n0, n1):
    """_maxpool_backward for 2x2 stride 2 without padding, on dout and dx viewed as integers.

    The windows tile the image, so each dx pixel is written once: dout's bits
    where the pixel is its window's first maximum (or first NaN), else 0.
    Pixels past the last window (odd H or W) get 0.
    """
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = gbits.shape[2], gbits.shape[3]
    T = gbits.dtype.type
    for n in range(n0, n1):
        for c in range(C):
            for oh in range(OH):
                r0, r1 = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
                d0, d1 = dxbits[n, c, 2 * oh], dxbits[n, c, 2 * oh + 1]
                g = gbits[n, c, oh]
                for t in range(OW):
                    a, b, p, q = r0[2 * t], r0[2 * t + 1], r1[2 * t], r1[2 * t + 1]
                    m = _pmax(_pmax(_pmax(a, b), p), q)
                    ka, kb, kp = -T(_hit(a, m)), -T(_hit(b, m)), -T(_hit(p, m))
                    rem = g[t]
                    d0[2 * t] = rem & ka
                    rem &= ~ka
                    d0[2 * t + 1] = rem & kb
                    rem &= ~kb
                    d1[2 * t] = rem & kp
                    d1[2 * t + 1] = rem & ~kp
                if W % 2:
                    d0[W - 1] = 0
                    d1[W - 1] = 0
            if H % 2:
                dxbits[n, c, H - 1] = 0


@njit(nogil=True, cache=True)
def _avgpool_forward(x, kh, kw, sh, sw, ph, pw, y, n0, n1):
    """Window sums in float64, one (i, j) pass at a time along an output row (each window
    still adds its pixels in row-major order), times 1/(KH*KW)."""
    H = x.shape[2]
    lo, hi = _col_ranges(kw, sw, pw, x.shape[3], y.shape[3])
    acc = np.empty(y.shape[3])
    scale = 1.0 / (kh * kw)
    usw = uint64(sw)
    for n in range(n0, n1):
        for c in range(x.shape[1]):
            xp, yp = x[n, c], y[n, c]
            for oh in range(yp.shape[0]):
                y0 = oh * sh - ph
                acc[:] = 0.0
                for i in range(max(y0, 0), min(y0 + kh, H)):
                    r = xp[i]
                    for j in range(kw):
                        a, base = _run_start(lo, j, sw, pw)
                        for t in range(hi[j] - lo[j]):
                            u = uint64(t)
                            acc[a + u] += r[base + u * usw]
                yr = yp[oh]
                for t in range(yr.size):
                    yr[t] = acc[t] * scale


@njit(nogil=True, cache=True)
def _avgpool_backward(dout, kh, kw, sh, sw, ph, pw, dx, n0, n1):
    H = dx.shape[2]
    lo, hi = _col_ranges(kw, sw, pw, dx.shape[3], dout.shape[3])
    gs = np.empty(dout.shape[3])
    scale = 1.0 / (kh * kw)
    usw = uint64(sw)
    for n in range(n0, n1):
        for c in range(dx.shape[1]):
            gp, dp = dout[n, c], dx[n, c]
            dp[:] = 0
            for oh in range(gp.shape[0]):
                y0 = oh * sh - ph
                g = gp[oh]
                for t in range(gs.size):
                    gs[t] = g[t] * scale
                for i in range(max(y0, 0), min(y0 + kh, H)):
                    d = dp[i]
                    # j descending: a pixel then gets its windows' shares in ow order, the
                    # order of a per-window loop, so overlapping windows round the same way
                    for j in range(kw - 1, -1, -1):
                        a, base = _run_start(lo, j, sw, pw)
                        for t in range(hi[j] - lo[j]):
                            u = uint64(t)
                            d[base + u * usw] += gs[a + u]


def _is_2x2_tiling(kh, kw, sh, sw, ph, pw):
    return (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0)


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y):
    """y (N, C, OH, OW) = max of each window of x (N, C, H, W); NaN where a window holds one.
    Returns y."""
    if _is_2x2_tiling(kh, kw, sh, sw, ph, pw):
        run_slices(lambda a, z: _maxpool_forward_2x2(x, y, a, z), x.shape[0])
    else:
        run_slices(lambda a, z: _maxpool_forward(x, kh, kw, sh, sw, ph, pw, y, a, z),
                   x.shape[0])
    return y


def maxpool2d_backward(dout, x, y, kh, kw, sh, sw, ph, pw, dx):
    """dx (N, C, H, W) = dout (N, C, OH, OW) routed to each window's first maximum (dx overwritten).

    x and y are the forward's input and output (y unchanged since); dx has dout's dtype.
    Returns dx.
    """
    if _is_2x2_tiling(kh, kw, sh, sw, ph, pw):
        bits = _BITS[dout.dtype]
        gbits, dxbits = dout.view(bits), dx.view(bits)
        run_slices(lambda a, z: _maxpool_backward_2x2(gbits, x, dxbits, a, z), dx.shape[0])
    else:
        run_slices(lambda a, z: _maxpool_backward(dout, x, y, kh, kw, sh, sw, ph, pw, dx, a, z),
                   dx.shape[0])
    return dx


def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, y):
    """y (N, C, OH, OW) = sum of each window of x (N, C, H, W) / (KH*KW); returns y."""
    run_slices(lambda a, z: _avgpool_forward(x, kh, kw, sh, sw, ph, pw, y, a, z), x.shape[0])
    return y


def avgpool2d_backward(dout, kh, kw, sh, sw, ph, pw, dx):
    """dx (N, C, H, W) = dout / (KH*KW) spread over each window (dx overwritten); returns dx."""
    run_slices(lambda a, z: _avgpool_backward(dout, kh, kw, sh, sw, ph, pw, dx, a, z),
               dx.shape[0])
    return dx


def global_avgpool2d_forward(x, y):
    """y (N, C) = the mean of each (H, W) plane of x (N, C, H, W); returns y."""
    return np.mean(x, axis=(2, 3), out=y)


def global_avgpool2d_backward(dout, dx):
    """dx (N, C, H, W) = dout (N, C) / (H*W) on every pixel of its plane; returns dx."""
    dx[...] = (dout / (dx.shape[2] * dx.shape[3]))[:, :, None, None]
    return dx


__all__ = ["maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
           "global_avgpool2d_forward", "global_avgpool2d_backward"]
