"""Max, average and global average pooling on the GPU: twins of cdl.kernels.pool.

Same semantics as the CPU kernels (see cdl/kernels/pool.py): window (oh, ow)
covers rows oh*SH - PH .. +KH and columns ow*SW - PW .. +KW, clipped to the
image; max pooling's padding never wins, a NaN anywhere in a window makes its
maximum NaN, and backward routes dout[oh, ow] to the window's first pixel in
row-major order equal to y[oh, ow] (its first NaN when y[oh, ow] is NaN);
average pooling divides by the full window KH*KW, padding included.

Forward kernels: one thread per output element. Backward kernels are gathers,
one thread per input pixel summing the windows that cover it in (oh, ow)
row-major order: no atomics, every pixel of dx written (0 where no window
routes to it). Average pooling rounds as the CPU kernels do; max pooling's
fast CPU loops add a pixel's windows in another order, so a pixel that is the
maximum of three windows or more may differ from the CPU in the last bit.
"""
from numba import cuda

from cdl.cuda._launch import flat, grid
from cdl.cuda._minmax import max2, min2


@cuda.jit(device=True)
def _covering(h, p, k, s, n_out):
    """(lo, hi): the outputs o in [lo, hi) whose window o*s - p .. o*s - p + k covers h."""
    a = h + p - k + 1  # o*s >= a
    lo = 0 if a <= 0 else (a + s - 1) // s
    return lo, min2(n_out, (h + p) // s + 1)


@cuda.jit
def _maxpool2d_forward_k(x, kh, kw, sh, sw, ph, pw, y):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, y.size, step):
        ow, oh = t % OW, (t // OW) % OH
        c, n = (t // (OW * OH)) % C, t // (OW * OH * C)
        i0, j0 = max2(oh * sh - ph, 0), max2(ow * sw - pw, 0)
        i1, j1 = min2(oh * sh - ph + kh, H), min2(ow * sw - pw + kw, W)
        best = x[n, c, i0, j0]
        for i in range(i0, i1):
            for j in range(j0, j1):
                v = x[n, c, i, j]
                if v > best or v != v:  # a NaN, once in, stays (nothing compares > NaN)
                    best = v
        y[n, c, oh, ow] = best


@cuda.jit
def _maxpool2d_backward_k(dout, x, y, kh, kw, sh, sw, ph, pw, dx):
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    OH, OW = dout.shape[2], dout.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, dx.size, step):
        w, h = t % W, (t // W) % H
        c, n = (t // (W * H)) % C, t // (W * H * C)
        dx[n, c, h, w] = 0
        oh0, oh1 = _covering(h, ph, kh, sh, OH)
        ow0, ow1 = _covering(w, pw, kw, sw, OW)
        for oh in range(oh0, oh1):
            i0, i1 = max2(oh * sh - ph, 0), min2(oh * sh - ph + kh, H)
            for ow in range(ow0, ow1):
                j0, j1 = max2(ow * sw - pw, 0), min2(ow * sw - pw + kw, W)
                m = y[n, c, oh, ow]
                # the window's first pixel equal to m (a NaN matching a NaN m): is it (h, w)?
                fi = -1
                fj = -1
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        v = x[n, c, i, j]
                        if v == m or (m != m and v != v):
                            fi = i
                            fj = j
                            break
                    if fi >= 0:
                        break
                if fi == h and fj == w:
                    dx[n, c, h, w] += dout[n, c, oh, ow]


@cuda.jit
def _avgpool2d_forward_k(x, kh, kw, sh, sw, ph, pw, y):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    scale = 1.0 / (kh * kw)
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, y.size, step):
        ow, oh = t % OW, (t // OW) % OH
        c, n = (t // (OW * OH)) % C, t // (OW * OH * C)
        acc = 0.0  # float64, pixels in row-major order, times 1/(KH*KW): as the CPU kernel
        for i in range(max2(oh * sh - ph, 0), min2(oh * sh - ph + kh, H)):
            for j in range(max2(ow * sw - pw, 0), min2(ow * sw - pw + kw, W)):
                acc += x[n, c, i, j]
        y[n, c, oh, ow] = acc * scale


@cuda.jit
def _avgpool2d_backward_k(dout, kh, kw, sh, sw, ph, pw, dx):
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    OH, OW = dout.shape[2], dout.shape[3]
    scale = 1.0 / (kh * kw)
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, dx.size, step):
        w, h = t % W, (t // W) % H
        c, n = (t // (W * H)) % C, t // (W * H * C)
        oh0, oh1 = _covering(h, ph, kh, sh, OH)
        ow0, ow1 = _covering(w, pw, kw, sw, OW)
        # accumulated in dx, each share dout * scale in float64: the CPU kernel's rounding
        dx[n, c, h, w] = 0
        for oh in range(oh0, oh1):
            for ow in range(ow0, ow1):
                dx[n, c, h, w] += dout[n, c, oh, ow] * scale


@cuda.jit
def _global_avgpool2d_forward_k(x, y):
    """y[r] = mean of row r of x (N*C, H*W), summed in float64."""
    L = x.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, y.size, step):
        acc = 0.0
        for k in range(L):
            acc += x[r, k]
        y[r] = acc / L


@cuda.jit
def _global_avgpool2d_backward_k(dout, dx):
    """dx[r, k] = dout[r] / (H*W) for dx (N*C, H*W)."""
    L = dx.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, dx.size, step):
        dx[t // L, t % L] = dout[t // L] / L


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y):
    """y (N, C, OH, OW) = max of each window of x (N, C, H, W); NaN where a window holds one.
    Returns y."""
    if y.size:
        _maxpool2d_forward_k[grid(y.size)](x, kh, kw, sh, sw, ph, pw, y)
    return y


def maxpool2d_backward(dout, x, y, kh, kw, sh, sw, ph, pw, dx):
    """dx (N, C, H, W) = dout (N, C, OH, OW) routed to each window's first maximum (dx overwritten).

    x and y are the forward's input and output (y unchanged since); dx has dout's dtype.
    Returns dx.
    """
    if dx.size:
        _maxpool2d_backward_k[grid(dx.size)](dout, x, y, kh, kw, sh, sw, ph, pw, dx)
    return dx


def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, y):
    """y (N, C, OH, OW) = sum of each window of x (N, C, H, W) / (KH*KW); returns y."""
    if y.size:
        _avgpool2d_forward_k[grid(y.size)](x, kh, kw, sh, sw, ph, pw, y)
    return y


def avgpool2d_backward(dout, kh, kw, sh, sw, ph, pw, dx):
    """dx (N, C, H, W) = dout / (KH*KW) spread over each window (dx overwritten); returns dx."""
    if dx.size:
        _avgpool2d_backward_k[grid(dx.size)](dout, kh, kw, sh, sw, ph, pw, dx)
    return dx


def global_avgpool2d_forward(x, y):
    """y (N, C) = the mean of each (H, W) plane of x (N, C, H, W); returns y."""
    if y.size:
        N, C, H, W = x.shape
        _global_avgpool2d_forward_k[grid(y.size)](x.reshape(N * C, H * W), flat(y))
    return y


def global_avgpool2d_backward(dout, dx):
    """dx (N, C, H, W) = dout (N, C) / (H*W) on every pixel of its plane; returns dx."""
    if dx.size:
        N, C, H, W = dx.shape
        _global_avgpool2d_backward_k[grid(dx.size)](flat(dout), dx.reshape(N * C, H * W))
    return dx


__all__ = ["maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
           "global_avgpool2d_forward", "global_avgpool2d_backward"]
