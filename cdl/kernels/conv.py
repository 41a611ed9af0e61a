"""Convolution on the CPU: im2col + one BLAS GEMM, col2im for dx.

    forward:  col = im2col(x)                      (N*OH*OW, C*KH*KW)
              y   = col @ W.reshape(F, -1).T + b   (N*OH*OW, F) -> (N, F, OH, OW)
    backward: dy  = dout as (N*OH*OW, F)
              dW  = dy.T @ col,  db = sum(dy),  dx = col2im(dy @ W.reshape(F, -1))

Geometry (stride, pad, fit of the kernel) is validated by the caller.
"""
import numpy as np

from cdl.kernels import im2col as _cols


def _geometry(x_shape, w_shape, stride, pad):
    (sh, sw), (ph, pw) = stride, pad
    kh, kw = w_shape[2:]
    oh = (x_shape[2] + 2 * ph - kh) // sh + 1
    ow = (x_shape[3] + 2 * pw - kw) // sw + 1
    return kh, kw, sh, sw, ph, pw, oh, ow


def conv2d_forward(x, W, b, stride, pad):
    """y (N, F, OH, OW) = conv(x (N, C, H, W), W (F, C, KH, KW)) + b (F,) or None."""
    g = _geometry(x.shape, W.shape, stride, pad)
    N, F = x.shape[0], W.shape[0]
    col = _cols.im2col(x, *g)
    y = col @ W.reshape(F, -1).T
    if b is not None:
        y += b
    oh, ow = g[-2:]
    return np.ascontiguousarray(y.reshape(N, oh, ow, F).transpose(0, 3, 1, 2))


def conv2d_backward(dout, x, W, stride, pad, with_bias=True):
    """(dx, dW, db) for dout (N, F, OH, OW); db is None without a bias."""
    g = _geometry(x.shape, W.shape, stride, pad)
    F = W.shape[0]
    col = _cols.im2col(x, *g)
    dy = dout.transpose(0, 2, 3, 1).reshape(-1, F)
    dW = (dy.T @ col).reshape(W.shape)
    db = dy.sum(axis=0) if with_bias else None
    dx = _cols.col2im(np.ascontiguousarray(dy @ W.reshape(F, -1)), x.shape, *g)
    return dx, dW, db
