# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: language_level=3
"""im2col / col2im in the layout of the book's ``common/util.py``.

Only typed-memoryview loops live here. ``cdl/kernels/im2col.py`` is the one
caller: it checks shapes, dtypes and contiguity and allocates the outputs, so
these loops never see an array they could index out of bounds.

Index mapping (book layout), for x of shape (N, C, H, W):
    row  = (n * OH + oh) * OW + ow
    col  = (c * KH + i) * KW + j
    x[n, c, oh * SH - PH + i, ow * SW - PW + j]   (zero outside the image)
"""
from cython.parallel cimport prange

ctypedef fused real:
    float
    double


def im2col_rows(const real[:, :, :, ::1] x, real[:, ::1] col,
                int kh, int kw, int sh, int sw, int ph, int pw,
                int oh_n, int ow_n):
    """x (N, C, H, W) -> col (N*OH*OW, C*KH*KW), parallel over the batch."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t n, c, i, j, oh, ow, y, xx, row, k
    with nogil:
        for n in prange(N, schedule="static"):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    row = (n * oh_n + oh) * ow_n + ow
                    k = 0
                    for c in range(C):
                        for i in range(kh):
                            y = oh * sh - ph + i
                            if y < 0 or y >= H:
                                for j in range(kw):
                                    col[row, k + j] = 0
                            else:
                                for j in range(kw):
                                    xx = ow * sw - pw + j
                                    if xx < 0 or xx >= W:
                                        col[row, k + j] = 0
                                    else:
                                        col[row, k + j] = x[n, c, y, xx]
                            k = k + kw


def col2im_rows(const real[:, ::1] col, real[:, :, :, ::1] dx,
                int kh, int kw, int sh, int sw, int ph, int pw,
                int oh_n, int ow_n):
    """Adjoint of im2col_rows: adds every column entry back onto its pixel.

    dx must be zeroed by the caller. Each thread owns whole samples, so the
    overlapping windows of one sample add up without write conflicts.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t n, c, i, j, oh, ow, y, xx, row, k
    with nogil:
        for n in prange(N, schedule="static"):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    row = (n * oh_n + oh) * ow_n + ow
                    k = 0
                    for c in range(C):
                        for i in range(kh):
                            y = oh * sh - ph + i
                            if y >= 0 and y < H:
                                for j in range(kw):
                                    xx = ow * sw - pw + j
                                    if xx >= 0 and xx < W:
                                        dx[n, c, y, xx] += col[row, k + j]
                            k = k + kw
