"""The GEMM algorithms of cdl.kernels.conv: "gemm" (im2col + BLAS) and "pointwise" (1x1).

Each computes one thread's slice [a, z) of the batch, as cdl.kernels.parallel
hands it out (the algorithms themselves are described in cdl.kernels.conv):

    forward_slice / backward_slice                      "gemm", chunk by chunk
    pointwise_forward_slice / pointwise_backward_slice  "pointwise", sample by sample

plus ``sample_chunks``, the cut of a slice into chunks whose workspace stays near a
byte budget (shared with the Winograd slices), and the three Numba reorders
between GEMM rows or columns and NCHW. Geometry is validated by the caller.
"""
import numpy as np
from numba import njit

from cdl.kernels import im2col as _cols

# Bytes of col_t per chunk of a thread's slice of the batch (at least one sample): large
# enough for long GEMMs, small enough to stay in L2/L3 between im2col and the GEMM.
CHUNK_BYTES = 1 << 20

# Output channels from which the forward GEMM produces columns (see forward_slice).
FORWARD_COLUMNS_MIN_F = 64


def sample_chunks(a, z, sample_bytes, budget):
    """(nb, sample ranges [n0, n1) of nb samples covering [a, z)): the workspace of a chunk,
    sample_bytes per sample, stays near budget bytes (at least one sample)."""
    nb = max(1, min(z - a, budget // max(1, sample_bytes)))
    return nb, [(n0, min(z, n0 + nb)) for n0 in range(a, z, nb)]


def buffer(flat, rows, cols):
    """A C-contiguous (rows, cols) view of the front of a flat scratch array."""
    return flat[:rows * cols].reshape(rows, cols)


# The three reorders loop over row views with 0-based indexes, which LLVM vectorizes;
# slice assignments and array expressions here make temporaries and strided copies.
@njit(nogil=True, cache=True)
def rows_to_nchw(yt, b, n0, y):
    """y[n0 + m, f, p] = yt[m*P + p, f] + b[f]: GEMM rows (nb*P, F) to NCHW (N, F, P)."""
    F, P = y.shape[1], y.shape[2]
    for m in range(yt.shape[0] // P):
        block = yt[m * P:(m + 1) * P]
        for f in range(F):
            dst, bf = y[n0 + m, f], b[f]
            for p in range(P):
                dst[p] = block[p, f] + bf


@njit(nogil=True, cache=True)
def cols_to_nchw(Y, b, n0, y):
    """y[n0 + m, f, :] = Y[f, m*P:(m+1)*P] + b[f]: GEMM columns (F, nb*P) to NCHW (N, F, P)."""
    F, P = y.shape[1], y.shape[2]
    for m in range(Y.shape[1] // P):
        for f in range(F):
            src, dst, bf = Y[f, m * P:(m + 1) * P], y[n0 + m, f], b[f]
            for p in range(P):
                dst[p] = src[p] + bf


@njit(nogil=True, cache=True)
def nchw_to_cols(dout, n0, n1, dy):
    """dy[f, m*P + p] = dout[n0 + m, f, p]: NCHW (N, F, P) to GEMM columns (F, nb*P)."""
    F, P = dout.shape[1], dout.shape[2]
    for m in range(n1 - n0):
        for f in range(F):
            src, dst = dout[n0 + m, f], dy[f, m * P:(m + 1) * P]
            for p in range(P):
                dst[p] = src[p]


def forward_slice(x, Wm, bias, g, y, a, z):
    """y[a:z] for samples a..z-1, chunk by chunk, in the calling thread.

    With few output channels the BLAS GEMM is faster computing y as rows
    (col_t.T @ Wm.T: a long, thin product); from FORWARD_COLUMNS_MIN_F on the
    two orientations run alike and the columns (Wm @ col_t) win because
    reordering them to NCHW is a block copy rather than a transpose.
    """
    K, F, P = Wm.shape[1], Wm.shape[0], y.shape[2]
    nb, chunks = sample_chunks(a, z, K * P * x.itemsize, CHUNK_BYTES)
    col_buf = np.empty(K * nb * P, dtype=x.dtype)
    y_buf = np.empty(nb * P * F, dtype=x.dtype)
    for n0, n1 in chunks:
        cols = (n1 - n0) * P
        col = _cols.im2col_t(x, buffer(col_buf, K, cols), n0, n1, *g)
        if F >= FORWARD_COLUMNS_MIN_F:
            cols_to_nchw(np.matmul(Wm, col, out=buffer(y_buf, F, cols)), bias, n0, y)
        else:
            rows_to_nchw(np.matmul(col.T, Wm.T, out=buffer(y_buf, cols, F)), bias, n0, y)


def backward_slice(d3, x, Wm, g, dx, a, z):
    """dx[a:z] (unless dx is None); returns this slice's dW.T (C*KH*KW, F) and db (F,),
    chunk by chunk."""
    K, F, P = Wm.shape[1], Wm.shape[0], d3.shape[2]
    nb, chunks = sample_chunks(a, z, K * P * x.itemsize, CHUNK_BYTES)
    col_buf = np.empty(K * nb * P, dtype=x.dtype)
    dcol_buf = np.empty(K * nb * P if dx is not None else 0, dtype=x.dtype)
    dy_buf = np.empty(F * nb * P, dtype=x.dtype)
    dWt, part = np.zeros((K, F), dtype=x.dtype), np.empty((K, F), dtype=x.dtype)
    db = np.zeros(F, dtype=x.dtype)
    for n0, n1 in chunks:
        cols = (n1 - n0) * P
        col = _cols.im2col_t(x, buffer(col_buf, K, cols), n0, n1, *g)
        dy = buffer(dy_buf, F, cols)
        nchw_to_cols(d3, n0, n1, dy)
        db += dy.sum(axis=1)  # contiguous rows, still in cache
        dWt += np.matmul(col, dy.T, out=part)
        if dx is not None:
            dcol = np.matmul(Wm.T, dy, out=buffer(dcol_buf, K, cols))
            _cols.col2im_t(dcol, dx, n0, n1, *g)
    return dWt, db


def pointwise_forward_slice(x3, Wm, b, y3, a, z):
    """y[a:z] = Wm @ x[a:z] + b, one GEMM per sample (NCHW in, NCHW out)."""
    np.matmul(Wm, x3[a:z], out=y3[a:z])
    if b is not None:
        y3[a:z] += b[:, None]


def pointwise_backward_slice(d3, x3, Wm, dx3, a, z):
    """dx[a:z] = Wm.T @ dy[a:z] (unless dx3 is None); returns this slice's
    dW = sum_n dy[n] @ x[n].T and db."""
    if dx3 is not None:
        np.matmul(Wm.T, d3[a:z], out=dx3[a:z])
    dW, part = np.zeros(Wm.shape, dtype=Wm.dtype), np.empty(Wm.shape, dtype=Wm.dtype)
    for n in range(a, z):
        dW += np.matmul(d3[n], x3[n].T, out=part)
    return dW, d3[a:z].sum(axis=2).sum(axis=0)
