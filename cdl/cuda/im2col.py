"""im2col / col2im on the GPU: twins of cdl.kernels.im2col (same names, same arguments),
all gathers.

im2col_rows and col2im_rows are the kernels behind cdl.ops, in the book's
layout: col (N*OH*OW, C*KH*KW), row (n*OH + oh)*OW + ow, column (c*KH + i)*KW + j
holding x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 in the padding).
im2col_rows: one thread per element of col; col2im_rows: one thread per pixel
of out, summing the columns that read it (below).

im2col_t and col2im_t are the helpers the convolution uses:
col_t (C*KH*KW, nb*OH*OW) is the transpose of the book's col over samples
n0..n1-1 of the batch: row r = (c*KH + i)*KW + j, column q = m*OH*OW + oh*OW + ow,
holding x[n0 + m, c, oh*SH - PH + i, ow*SW - PW + j] (0 in the padding).

im2col_t: one thread per element of col_t.
col2im_t: one thread per pixel of dx[n0:n1], summing the columns that read it
(Caffe's col2im_gpu_kernel): no atomics, each pixel written once, so dx is
overwritten, pixels no window reads included.

They are not kernels of their own (not in __all__): the convolution twins call
them, as the CPU convolution calls its im2col_t and col2im_t.
"""
from numba import cuda

from cdl.cuda._launch import grid


@cuda.jit
def _im2col_t_k(x, col, n0, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    H, W = x.shape[2], x.shape[3]
    Q, P = col.shape[1], oh_n * ow_n
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, col.size, step):
        r, q = t // Q, t % Q
        c, i, j = r // (kh * kw), (r // kw) % kh, r % kw
        m, p = q // P, q % P
        y = (p // ow_n) * sh - ph + i
        xx = (p % ow_n) * sw - pw + j
        if 0 <= y < H and 0 <= xx < W:
            col[r, q] = x[n0 + m, c, y, xx]
        else:
            col[r, q] = 0


@cuda.jit(device=True)
def _pixel_sum(col, transposed, m, c, y, xx, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """The sum of the entries of col that read pixel (y, xx) of channel c of sample m: entry
    (r, q) of col_t (transposed) or (q, r) of col, r = (c*KH + i)*KW + j and
    q = (m*OH + oh)*OW + ow, for every window (oh, ow) whose tap (i, j) is that pixel."""
    # kernel rows i with (y + ph - i) a multiple of sh, i.e. output rows oh = (y + ph - i) / sh
    # in [0, oh_n): i from (y + ph) % sh up to y + ph, step sh; likewise columns j
    acc = 0.0  # float64: a few terms, summed exactly enough for float32 and float64
    # (no builtin min: it does not compile for CUDA in Numba 0.66-0.68, numba/numba#10753)
    i1 = kh if kh < y + ph + 1 else y + ph + 1
    j1 = kw if kw < xx + pw + 1 else xx + pw + 1
    for i in range((y + ph) % sh, i1, sh):
        oh = (y + ph - i) // sh
        if oh < oh_n:
            for j in range((xx + pw) % sw, j1, sw):
                ow = (xx + pw - j) // sw
                if ow < ow_n:
                    r, q = (c * kh + i) * kw + j, (m * oh_n + oh) * ow_n + ow
                    acc += col[r, q] if transposed else col[q, r]
    return acc


@cuda.jit
def _col2im_t_k(col, dx, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, (n1 - n0) * C * H * W, step):
        xx = t % W
        y = (t // W) % H
        c = (t // (W * H)) % C
        m = t // (W * H * C)
        dx[n0 + m, c, y, xx] = _pixel_sum(col, True, m, c, y, xx, kh, kw, sh, sw, ph, pw,
                                          oh_n, ow_n)


def im2col_t(x, col, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """x[n0:n1] (nb, C, H, W) -> col (C*KH*KW, nb*OH*OW), written in place; returns col."""
    if col.size:
        _im2col_t_k[grid(col.size)](x, col, n0, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    return col


def col2im_t(col, dx, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """Adjoint of im2col_t: overwrites dx[n0:n1] with col summed onto its pixels; returns dx."""
    n = (n1 - n0) * dx.shape[1] * dx.shape[2] * dx.shape[3]
    if n:
        _col2im_t_k[grid(n)](col, dx, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    return dx


@cuda.jit
def _im2col_k(x, kh, kw, sh, sw, ph, pw, oh_n, ow_n, col):
    H, W = x.shape[2], x.shape[3]
    K, P = col.shape[1], oh_n * ow_n
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, col.size, step):
        r, k = t // K, t % K
        n, p = r // P, r % P
        c, i, j = k // (kh * kw), (k // kw) % kh, k % kw
        y = (p // ow_n) * sh - ph + i
        xx = (p % ow_n) * sw - pw + j
        if 0 <= y < H and 0 <= xx < W:
            col[r, k] = x[n, c, y, xx]
        else:
            col[r, k] = 0


@cuda.jit
def _col2im_k(col, kh, kw, sh, sw, ph, pw, oh_n, ow_n, dx):
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, dx.size, step):
        xx = t % W
        y = (t // W) % H
        c = (t // (W * H)) % C
        n = t // (W * H * C)
        dx[n, c, y, xx] = _pixel_sum(col, False, n, c, y, xx, kh, kw, sh, sw, ph, pw, oh_n, ow_n)


def im2col_rows(x, kh, kw, sh, sw, ph, pw, oh, ow, out):
    """out (N*OH*OW, C*KH*KW) = the windows of x (N, C, H, W), one per row; returns out."""
    if out.size:
        _im2col_k[grid(out.size)](x, kh, kw, sh, sw, ph, pw, oh, ow, out)
    return out


def col2im_rows(col, kh, kw, sh, sw, ph, pw, oh, ow, out):
    """out (N, C, H, W) = col (N*OH*OW, C*KH*KW) summed onto its pixels (overwritten);
    returns out."""
    if out.size:
        _col2im_k[grid(out.size)](col, kh, kw, sh, sw, ph, pw, oh, ow, out)
    return out


__all__ = ["im2col_rows", "col2im_rows"]
