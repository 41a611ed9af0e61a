"""Convolution on the GPU: twins of cdl.kernels.conv (conv2d_forward, conv2d_backward).

One algorithm, the CPU's "gemm" on device arrays, a chunk of samples n0..n1 at a time
(nb samples, P = OH*OW, Wm = W as (F, C*KH*KW)):

    col_t = im2col_t(x[n0:n1])               (C*KH*KW, nb*P)   cdl.cuda.im2col, a gather
    forward:  Y  = Wm @ col_t                (F, nb*P)         cdl.cuda.gemm
              y[n0 + m, f, p] = Y[f, m*P + p] + b[f]           one thread per element of y
    backward: dy[f, m*P + p] = dout[n0 + m, f, p]              one thread per element
              dW (+)= dy @ col_t.T                             GEMM, beta = 1 after the first chunk
              dcol = Wm.T @ dy, dx[n0:n1] = col2im_t(dcol)     a gather per pixel, no atomics
              db[f] = sum over n, p of dout[n, f, p]           one thread per filter

A chunk's col_t holds about _CHUNK_BYTES (at least one sample), so the scratch stays
bounded whatever the batch; backward reuses it for dcol once dW has read it. The
scratch comes from cdl.cuda.memory; nothing here synchronizes.
"""
from numba import cuda

from cdl.cuda import memory
from cdl.cuda._launch import grid
from cdl.cuda.gemm import gemm
from cdl.cuda.im2col import col2im_t, im2col_t

# Bytes of col_t per chunk of the batch (at least one sample).
_CHUNK_BYTES = 256 << 20


@cuda.jit
def _cols_to_nchw_k(Y, b, has_bias, n0, y):
    """y[n0 + m, f, p] = Y[f, m*P + p] (+ b[f]) for the chunk's samples; y (N, F, P)."""
    F, P = y.shape[1], y.shape[2]
    Q = Y.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, F * Q, step):
        f, q = t // Q, t % Q
        v = Y[f, q]
        if has_bias:
            v += b[f]
        y[n0 + q // P, f, q % P] = v


@cuda.jit
def _nchw_to_cols_k(dout, n0, dy):
    """dy[f, m*P + p] = dout[n0 + m, f, p]; dout (N, F, P)."""
    P, Q = dout.shape[2], dy.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, dy.size, step):
        f, q = t // Q, t % Q
        dy[f, q] = dout[n0 + q // P, f, q % P]


@cuda.jit
def _bias_grad_k(dout, db):
    """db[f] = sum of dout[:, f, :] in float64; dout (N, F, P)."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for f in range(start, db.size, step):
        acc = 0.0
        for n in range(dout.shape[0]):
            for p in range(dout.shape[2]):
                acc += dout[n, f, p]
        db[f] = acc


def _geometry(W, stride, pad, out_hw):
    (sh, sw), (ph, pw) = stride, pad
    return (W.shape[2], W.shape[3], sh, sw, ph, pw, *out_hw)


def _chunks(N, K, P, itemsize):
    """(nb, [(n0, n1), ...]): chunks of nb samples whose col_t (K, nb*P) is near _CHUNK_BYTES."""
    nb = max(1, min(N, _CHUNK_BYTES // max(1, K * P * itemsize)))
    return nb, [(n0, min(N, n0 + nb)) for n0 in range(0, N, nb)]


def conv2d_forward(x, W, b, stride, pad, y):
    """y (N, F, OH, OW) = conv(x (N, C, H, W), W (F, C, KH, KW)) + b (F,) or None; returns y."""
    N, F, oh, ow = y.shape
    if y.size == 0:
        return y
    g = _geometry(W, stride, pad, (oh, ow))
    K, P = W.size // F, oh * ow
    Wm, y3 = W.reshape(F, K), y.reshape(N, F, P)
    nb, chunks = _chunks(N, K, P, x.dtype.itemsize)
    col_buf = memory.empty(K * nb * P, x.dtype)
    y_buf = memory.empty(F * nb * P, x.dtype)
    for n0, n1 in chunks:
        cols = (n1 - n0) * P
        col = im2col_t(x, col_buf[:K * cols].reshape(K, cols), n0, n1, *g)
        Y = gemm(Wm, col, y_buf[:F * cols].reshape(F, cols))
        # without a bias, y_buf (1-D, x's dtype: it types like b) stands in for b, never read
        _cols_to_nchw_k[grid(F * cols)](Y, b if b is not None else y_buf, b is not None, n0, y3)
    return y


def conv2d_backward(dout, x, W, stride, pad, dx, dW, db):
    """dx (N, C, H, W), dW (F, C, KH, KW), db (F,) for dout (N, F, OH, OW), written into the
    outputs (overwritten); returns (dx, dW, db). dx None: not computed; db None: no bias."""
    N, F, oh, ow = dout.shape
    K, P = W.size // F, oh * ow
    d3 = dout.reshape(N, F, P)
    if db is not None and db.size:
        _bias_grad_k[grid(F)](d3, db)
    if dout.size == 0:
        memory.fill(dW, 0)
        if dx is not None:
            memory.fill(dx, 0)
        return dx, dW, db
    g = _geometry(W, stride, pad, (oh, ow))
    Wm, dWm = W.reshape(F, K), dW.reshape(F, K)
    nb, chunks = _chunks(N, K, P, x.dtype.itemsize)
    col_buf = memory.empty(K * nb * P, x.dtype)
    dy_buf = memory.empty(F * nb * P, x.dtype)
    for n0, n1 in chunks:
        cols = (n1 - n0) * P
        col = im2col_t(x, col_buf[:K * cols].reshape(K, cols), n0, n1, *g)
        dy = dy_buf[:F * cols].reshape(F, cols)
        _nchw_to_cols_k[grid(dy.size)](d3, n0, dy)
        gemm(dy, col, dWm, trans_b=True, beta=0.0 if n0 == 0 else 1.0)
        if dx is not None:  # col has been read: its buffer takes dcol
            dcol = gemm(Wm, dy, col, trans_a=True)
            col2im_t(dcol, dx, n0, n1, *g)
    return dx, dW, db


__all__ = ["conv2d_forward", "conv2d_backward"]
