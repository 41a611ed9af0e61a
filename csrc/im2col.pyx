# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: language_level=3
"""im2col / col2im in the layout of the book's ``common/util.py``, and its transpose.

Only typed-memoryview loops live here. ``cdl/kernels/im2col.py`` is the one
caller: it checks shapes, dtypes and contiguity and allocates the outputs, so
these loops never see an array they could index out of bounds.

Index mapping (book layout), for x of shape (N, C, H, W):
    row  = (n * OH + oh) * OW + ow
    col  = (c * KH + i) * KW + j
    x[n, c, oh * SH - PH + i, ow * SW - PW + j]   (zero outside the image)

The transposed layout (``im2col_t``, used by the convolution kernels) is
col.T restricted to the samples n0 <= n < n1, so that W (F, C*KH*KW) @ col_t
is one GEMM whose rows are output channels:
    col_t[(c * KH + i) * KW + j, ((n - n0) * OH + oh) * OW + ow]
Each row of col_t is a run of whole output rows, so with stride 1 the copy is
a memcpy of the valid part of an input row plus zeros for the padding.
"""
from libc.string cimport memcpy, memset

ctypedef fused real:
    float
    double


def im2col_rows(const real[:, :, :, ::1] x, real[:, ::1] col,
                int kh, int kw, int sh, int sw, int ph, int pw,
                int oh_n, int ow_n):
    """x (N, C, H, W) -> col (N*OH*OW, C*KH*KW), in the calling thread.

    Serial, like every loop here: cdl.kernels.im2col hands slices of the batch
    (x[n0:n1] and their rows of col, both contiguous) to cdl's worker threads.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t n, c, i, j, oh, ow, y, xx, row, k
    with nogil:
        for n in range(N):
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

    dx must be zeroed by the caller. Serial: a thread given a slice of the
    batch owns whole samples, so overlapping windows add up without write conflicts.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t n, c, i, j, oh, ow, y, xx, row, k
    with nogil:
        for n in range(N):
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


cdef inline Py_ssize_t _first_inside(Py_ssize_t j, int sw, int pw, int ow_n) noexcept nogil:
    """The first output ow whose input index ow*SW - PW + j is >= 0 (ow_n if none)."""
    cdef Py_ssize_t a = 0
    while a < ow_n and a * sw - pw + j < 0:
        a += 1
    return a


cdef inline Py_ssize_t _end_inside(Py_ssize_t j, int sw, int pw, Py_ssize_t W, int ow_n,
                                   Py_ssize_t first) noexcept nogil:
    """One past the last output ow >= first whose input index ow*SW - PW + j is < W."""
    cdef Py_ssize_t b = ow_n
    while b > first and (b - 1) * sw - pw + j >= W:
        b -= 1
    return b


cdef inline void _shifted_rows(const real *plane, real *dst, Py_ssize_t oh0, Py_ssize_t oh1,
                               Py_ssize_t W, Py_ssize_t di, Py_ssize_t d) noexcept nogil:
    """dst[oh*W + ow] = plane[(oh + di)*W + ow + d] for oh in [oh0, oh1), zero where
    ow + d leaves [0, W): stride 1 with OW == W ("same" width), one row of col_t.

    Output rows then follow input rows without a gap, so the rows are one
    contiguous copy shifted by (di*W + d); the |d| values per row that the
    shift wrapped around from the neighbouring row are zeroed afterwards.
    The copy is clipped to [lo, hi) so that it never reads outside the plane.
    """
    cdef Py_ssize_t off = di * W + d, q, oh, ow
    cdef Py_ssize_t lo = oh0 * W + (-d if d < 0 else 0)
    cdef Py_ssize_t hi = oh1 * W - (d if d > 0 else 0)
    for q in range(oh0 * W, lo):
        dst[q] = 0
    if hi > lo:  # a long run: libc's memcpy (AVX when the CPU has it) beats a 16-byte loop
        memcpy(&dst[lo], &plane[lo + off], (hi - lo) * sizeof(real))
    for q in range(hi, oh1 * W):
        dst[q] = 0
    if d < 0:
        for oh in range(oh0, oh1):
            for ow in range(-d):
                dst[oh * W + ow] = 0
    elif d > 0:
        for oh in range(oh0, oh1):
            for ow in range(W - d, W):
                dst[oh * W + ow] = 0


cdef void _gather_row(const real *src, real *dst, Py_ssize_t ow0, Py_ssize_t ow1,
                      Py_ssize_t ow_n, Py_ssize_t o, int sw) noexcept nogil:
    """dst[ow] = src[ow*SW + o] for ow in [ow0, ow1), zero elsewhere in [0, OW): one output
    row of col_t. A function of its own, so that its loop keeps its pointers in registers
    (inside im2col_t's body gcc spilled them to the stack: 2.3 ns per element)."""
    cdef Py_ssize_t ow
    for ow in range(ow0):
        dst[ow] = 0
    if sw == 1:
        for ow in range(ow0, ow1):
            dst[ow] = src[ow + o]
    else:
        for ow in range(ow0, ow1):
            dst[ow] = src[ow * sw + o]
    for ow in range(ow1, ow_n):
        dst[ow] = 0


def im2col_t(const real[:, :, :, ::1] x, real[:, ::1] col, int n0, int n1,
             int kh, int kw, int sh, int sw, int ph, int pw, int oh_n, int ow_n):
    """x[n0:n1] (nb, C, H, W) -> col_t (C*KH*KW, nb*OH*OW), in the calling thread.

    Serial on purpose: cdl.kernels.parallel runs slices of the batch on its
    worker threads, each with its own col_t (no OpenMP region per call).
    """
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t nb = n1 - n0, P = <Py_ssize_t>oh_n * ow_n  # in 64 bits: OH*OW may pass 2^31
    cdef Py_ssize_t r, m, c, i, j, oh, oh0, oh1, ow0, ow1, o
    cdef real *dst
    # Nested loops, no index divisions (a 64-bit idiv costs ~40 cycles, as much as
    # copying a 64-pixel row); plain loops rather than memcpy for one output row.
    with nogil:
        r = 0
        for c in range(C):
            for i in range(kh):
                # [oh0, oh1) x [ow0, ow1): the outputs whose input pixel is inside the image
                oh0 = _first_inside(i, sh, ph, oh_n)
                oh1 = _end_inside(i, sh, ph, H, oh_n, oh0)
                for j in range(kw):
                    ow0 = _first_inside(j, sw, pw, ow_n)
                    ow1 = _end_inside(j, sw, pw, W, ow_n, ow0)
                    for m in range(nb):
                        dst = &col[r, m * P]
                        for o in range(oh0 * ow_n):
                            dst[o] = 0
                        for o in range(oh1 * ow_n, P):
                            dst[o] = 0
                        if sh == 1 and sw == 1 and ow_n == W:
                            _shifted_rows(&x[n0 + m, c, 0, 0], dst, oh0, oh1, W, i - ph, j - pw)
                            continue
                        for oh in range(oh0, oh1):
                            _gather_row(&x[n0 + m, c, oh * sh - ph + i, 0],
                                        &col[r, m * P + oh * ow_n], ow0, ow1, ow_n, j - pw, sw)
                    r += 1


def col2im_t(const real[:, ::1] col, real[:, :, :, ::1] dx, int n0, int n1,
             int kh, int kw, int sh, int sw, int ph, int pw, int oh_n, int ow_n):
    """Adjoint of im2col_t: dx[n0:n1] = the col_t entries summed onto their pixels.

    Overwrites dx[n0:n1], one (sample, channel) plane at a time, gathering
    every column entry that lands in the plane; threads that own different
    samples never write to the same memory.
    """
    cdef Py_ssize_t C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t nb = n1 - n0, P = <Py_ssize_t>oh_n * ow_n  # in 64 bits: OH*OW may pass 2^31
    cdef Py_ssize_t r, m, c, i, j, oh, ow, oh0, oh1, ow0, ow1, o
    cdef real *dst
    cdef const real *src
    with nogil:
        for m in range(nb):
            for c in range(C):
                memset(&dx[n0 + m, c, 0, 0], 0, H * W * sizeof(real))
                r = c * kh * kw
                for i in range(kh):
                    oh0 = _first_inside(i, sh, ph, oh_n)
                    oh1 = _end_inside(i, sh, ph, H, oh_n, oh0)
                    for j in range(kw):
                        ow0 = _first_inside(j, sw, pw, ow_n)
                        ow1 = _end_inside(j, sw, pw, W, ow_n, ow0)
                        for oh in range(oh0, oh1):
                            dst = &dx[n0 + m, c, oh * sh - ph + i, 0]
                            src = &col[r, m * P + oh * ow_n]
                            if sw == 1:
                                o = j - pw
                                for ow in range(ow0, ow1):
                                    dst[ow + o] += src[ow]
                            else:
                                for ow in range(ow0, ow1):
                                    dst[ow * sw - pw + j] += src[ow]
                        r += 1
