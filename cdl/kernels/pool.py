"""Max and average pooling kernels over NCHW, parallel over (n, c) planes.

Window (oh, ow) covers rows oh*SH - PH .. +KH and columns ow*SW - PW .. +KW,
clipped to the image. Max pooling treats padding as -inf (it never wins) and
stores the flat index y*W + x of the winner per output; average pooling
divides by the full window KH*KW, padding included (PyTorch's default).
Callers guarantee pad <= kernel // 2, so every window holds a real pixel.
A NaN in a window is propagated and its argmax stays inside the window.
"""
from numba import njit, prange


@njit(parallel=True, cache=True)
def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y, argmax):
    """y, argmax (N, C, OH, OW) = max of each window of x (N, C, H, W)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
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
                        if v > best:
                            best = v
                            arg = i * W + j
                y[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = arg


@njit(parallel=True, cache=True)
def maxpool2d_backward(dout, argmax, dx):
    """dx (N, C, H, W) += dout routed to each window's argmax; dx zeroed by caller."""
    N, C, H, W = dx.shape
    OH, OW = dout.shape[2], dout.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for oh in range(OH):
            for ow in range(OW):
                a = argmax[n, c, oh, ow]
                dx[n, c, a // W, a % W] += dout[n, c, oh, ow]


@njit(parallel=True, cache=True)
def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, y):
    """y (N, C, OH, OW) = sum of each window of x / (KH*KW)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    scale = 1.0 / (kh * kw)
    for nc in prange(N * C):
        n, c = nc // C, nc % C
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


@njit(parallel=True, cache=True)
def avgpool2d_backward(dout, kh, kw, sh, sw, ph, pw, dx):
    """dx (N, C, H, W) += dout / (KH*KW) over each window; dx zeroed by caller."""
    N, C, H, W = dx.shape
    OH, OW = dout.shape[2], dout.shape[3]
    scale = 1.0 / (kh * kw)
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for oh in range(OH):
            y0 = oh * sh - ph
            i0, i1 = max(y0, 0), min(y0 + kh, H)
            for ow in range(OW):
                x0 = ow * sw - pw
                j0, j1 = max(x0, 0), min(x0 + kw, W)
                g = dout[n, c, oh, ow] * scale
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        dx[n, c, i, j] += g
