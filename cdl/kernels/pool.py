"""Max and average pooling kernels over NCHW, parallel over slices of the batch.

Window (oh, ow) covers rows oh*SH - PH .. +KH and columns ow*SW - PW .. +KW,
clipped to the image. Max pooling treats padding as -inf (it never wins) and
stores the flat index y*W + x of the winner per output; average pooling
divides by the full window KH*KW, padding included (PyTorch's default).
Callers guarantee pad <= kernel // 2, so every window holds a real pixel.
A NaN anywhere in a window is propagated (as np.max and PyTorch do) and its
argmax stays inside the window.

The public functions split the batch with cdl.kernels.parallel.run_slices
(one pool of threads for all of cdl's conv and pool kernels); the Numba
loops below handle samples n0 <= n < n1 serially and release the GIL.
Backward kernels overwrite dx: each (sample, channel) plane is zeroed and
filled while it is in cache, instead of a separate np.zeros pass.
"""
from numba import njit

from cdl.kernels.parallel import run_slices


@njit(nogil=True, cache=True)
def _maxpool_forward(x, kh, kw, sh, sw, ph, pw, y, argmax, n0, n1):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    for n in range(n0, n1):
        for c in range(C):
            for oh in range(OH):
                y0 = oh * sh - ph
                i0, i1 = max(y0, 0), min(y0 + kh, H)
                for ow in range(OW):
                    x0 = ow * sw - pw
                    j0, j1 = max(x0, 0), min(x0 + kw, W)
                    best = x[n, c, i0, j0]
                    arg = i0 * W + j0
                    for i in range(i0, i1):
                        for j in range(j0, j1):
                            v = x[n, c, i, j]
                            if v > best or v != v:  # v != v: NaN, which then stays
                                best = v
                                arg = i * W + j
                    y[n, c, oh, ow] = best
                    argmax[n, c, oh, ow] = arg


@njit(nogil=True, cache=True)
def _maxpool_forward_2x2(x, y, argmax, n0, n1):
    """_maxpool_forward for 2x2 windows, stride 2, no padding (every window inside the
    image), unrolled: the same comparisons in the same order, about twice as fast."""
    C, W = x.shape[1], x.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    for n in range(n0, n1):
        for c in range(C):
            for oh in range(OH):
                r0, r1 = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
                yrow, arow = y[n, c, oh], argmax[n, c, oh]
                base = 2 * oh * W
                for ow in range(OW):
                    j = 2 * ow
                    best, arg = r0[j], base + j
                    v = r0[j + 1]
                    if v > best or v != v:
                        best, arg = v, base + j + 1
                    v = r1[j]
                    if v > best or v != v:
                        best, arg = v, base + W + j
                    v = r1[j + 1]
                    if v > best or v != v:
                        best, arg = v, base + W + j + 1
                    yrow[ow] = best
                    arow[ow] = arg


@njit(nogil=True, cache=True)
def _maxpool_backward(dout, argmax, dx, n0, n1):
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    OH, OW = dout.shape[2], dout.shape[3]
    for n in range(n0, n1):
        for c in range(C):
            plane = dx[n, c]
            plane[:] = 0
            for oh in range(OH):
                for ow in range(OW):
                    a = argmax[n, c, oh, ow]
                    plane[a // W, a % W] += dout[n, c, oh, ow]


@njit(nogil=True, cache=True)
def _avgpool_forward(x, kh, kw, sh, sw, ph, pw, y, n0, n1):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    scale = 1.0 / (kh * kw)
    for n in range(n0, n1):
        for c in range(C):
            for oh in range(OH):
                y0 = oh * sh - ph
                i0, i1 = max(y0, 0), min(y0 + kh, H)
                for ow in range(OW):
                    x0 = ow * sw - pw
                    j0, j1 = max(x0, 0), min(x0 + kw, W)
                    s = 0.0
                    for i in range(i0, i1):
                        for j in range(j0, j1):
                            s += x[n, c, i, j]
                    y[n, c, oh, ow] = s * scale


@njit(nogil=True, cache=True)
def _avgpool_backward(dout, kh, kw, sh, sw, ph, pw, dx, n0, n1):
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    OH, OW = dout.shape[2], dout.shape[3]
    scale = 1.0 / (kh * kw)
    for n in range(n0, n1):
        for c in range(C):
            plane = dx[n, c]
            plane[:] = 0
            for oh in range(OH):
                y0 = oh * sh - ph
                i0, i1 = max(y0, 0), min(y0 + kh, H)
                for ow in range(OW):
                    x0 = ow * sw - pw
                    j0, j1 = max(x0, 0), min(x0 + kw, W)
                    g = dout[n, c, oh, ow] * scale
                    for i in range(i0, i1):
                        for j in range(j0, j1):
                            plane[i, j] += g


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y, argmax):
    """y, argmax (N, C, OH, OW) = max of each window of x (N, C, H, W) and its flat index."""
    if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0):
        run_slices(lambda a, z: _maxpool_forward_2x2(x, y, argmax, a, z), x.shape[0])
    else:
        run_slices(lambda a, z: _maxpool_forward(x, kh, kw, sh, sw, ph, pw, y, argmax, a, z),
                   x.shape[0])


def maxpool2d_backward(dout, argmax, dx):
    """dx (N, C, H, W) = dout (N, C, OH, OW) routed to each window's argmax (dx overwritten)."""
    run_slices(lambda a, z: _maxpool_backward(dout, argmax, dx, a, z), dx.shape[0])


def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, y):
    """y (N, C, OH, OW) = sum of each window of x (N, C, H, W) / (KH*KW)."""
    run_slices(lambda a, z: _avgpool_forward(x, kh, kw, sh, sw, ph, pw, y, a, z), x.shape[0])


def avgpool2d_backward(dout, kh, kw, sh, sw, ph, pw, dx):
    """dx (N, C, H, W) = dout / (KH*KW) spread over each window (dx overwritten)."""
    run_slices(lambda a, z: _avgpool_backward(dout, kh, kw, sh, sw, ph, pw, dx, a, z),
               dx.shape[0])
