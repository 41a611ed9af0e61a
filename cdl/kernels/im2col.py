"""im2col / col2im: the one door to the Cython extension ``cdl._im2col``.

The wrappers check dtype, contiguity and shapes of the arrays they are given
(outputs included: the caller allocates them); the compiled loops trust
them. When the extension is missing or does not load (a source checkout that
was never built, a build for another Python), cdl says so once, with the
reason, and uses the Numba twins below, which compute the same thing.

Every loop here is serial (no OpenMP in the extension): the batch is cut into
slices on cdl's worker threads (cdl.kernels.parallel.run_slices), by the
convolution kernels for im2col_t/col2im_t and by im2col_rows/col2im_rows
themselves. So the extension brings no OpenMP runtime of its own into the
process (a repaired wheel bundles none beside the one Numba may load).

Layouts (index mappings in ``csrc/im2col.pyx``): the book's ``util.im2col``,
col of shape (N*OH*OW, C*KH*KW), behind ``cdl.ops`` (the kernels ``im2col_rows``
and ``col2im_rows``, with CUDA twins in ``cdl.cuda.im2col``; not named ``im2col``,
which would shadow this module as an attribute of ``cdl.kernels``); and its transpose over a
slice of the batch, col_t of shape (C*KH*KW, nb*OH*OW), which the convolution
kernels feed to BLAS (``im2col_t`` / ``col2im_t``).
"""
import warnings

from numba import njit

from cdl._checks import INT32_MAX, check_int, conv_output_hw
from cdl.kernels.parallel import run_slices

_im2col = None
_loaded = _warned = False
_why = ""  # why the import failed, for the warning


def _compiled():
    """The Cython module, or None after warning once that it is missing.

    Imported on first use, not with cdl, so that importing cdl stays cheap.
    Any ImportError counts as missing: not built, or built for another
    Python or platform (the dynamic loader's message says which).
    """
    global _im2col, _loaded, _warned, _why
    if not _loaded:
        try:
            from cdl import _im2col as ext
            _im2col = ext
        except ImportError as e:  # tests/kernels/test_im2col.py blocks the import
            _im2col, _why = None, str(e)
        _loaded = True
    if _im2col is None and not _warned:
        warnings.warn(
            f"cdl's Cython extension cdl._im2col could not be loaded ({_why}); using the "
            "slower Numba im2col. Build it with `pip install .` (or `python setup.py "
            "build_ext --inplace` in a source checkout).", RuntimeWarning, stacklevel=3)
        _warned = True
    return _im2col


@njit(nogil=True, cache=True)
def _im2col_rows_nb(x, col, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    N, C, H, W = x.shape
    for n in range(N):
        for oh in range(oh_n):
            for ow in range(ow_n):
                row = (n * oh_n + oh) * ow_n + ow
                k = 0
                for c in range(C):
                    for i in range(kh):
                        y = oh * sh - ph + i
                        for j in range(kw):
                            xx = ow * sw - pw + j
                            if 0 <= y < H and 0 <= xx < W:
                                col[row, k + j] = x[n, c, y, xx]
                            else:
                                col[row, k + j] = 0
                        k += kw


@njit(nogil=True, cache=True)
def _col2im_rows_nb(col, dx, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    N, C, H, W = dx.shape
    for n in range(N):
        for oh in range(oh_n):
            for ow in range(ow_n):
                row = (n * oh_n + oh) * ow_n + ow
                k = 0
                for c in range(C):
                    for i in range(kh):
                        y = oh * sh - ph + i
                        if 0 <= y < H:
                            for j in range(kw):
                                xx = ow * sw - pw + j
                                if 0 <= xx < W:
                                    dx[n, c, y, xx] += col[row, k + j]
                        k += kw


@njit(nogil=True, cache=True)
def _im2col_t_nb(x, col, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    nb, P = n1 - n0, oh_n * ow_n
    for t in range(C * kh * kw * nb):
        r, m = t // nb, t % nb
        c, i, j = r // (kh * kw), (r // kw) % kh, r % kw
        for oh in range(oh_n):
            y = oh * sh - ph + i
            for ow in range(ow_n):
                xx = ow * sw - pw + j
                inside = 0 <= y < H and 0 <= xx < W
                col[r, m * P + oh * ow_n + ow] = x[n0 + m, c, y, xx] if inside else 0


@njit(nogil=True, cache=True)
def _col2im_t_nb(col, dx, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    nb, P = n1 - n0, oh_n * ow_n
    for t in range(nb * C):
        m, c = t // C, t % C
        dx[n0 + m, c] = 0
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                for oh in range(oh_n):
                    y = oh * sh - ph + i
                    if 0 <= y < H:
                        for ow in range(ow_n):
                            xx = ow * sw - pw + j
                            if 0 <= xx < W:
                                dx[n0 + m, c, y, xx] += col[r, m * P + oh * ow_n + ow]


def _check_geometry(who, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """The Cython loops take the geometry as C ints: ints in range, or ValueError (no
    OverflowError, no truncated float). The layers and cdl.ops have checked it already."""
    for name, v, lo in (("kh", kh, 1), ("kw", kw, 1), ("sh", sh, 1), ("sw", sw, 1),
                        ("ph", ph, 0), ("pw", pw, 0), ("oh_n", oh_n, 1), ("ow_n", ow_n, 1)):
        check_int(who, name, v, lo, INT32_MAX)


def _check_output_hw(who, hw, kh, kw, sh, sw, ph, pw, oh, ow):
    """The compiled loops trust OH, OW (a row of 1 pixel padded by 2 would be written
    past the end of col): they must be the ones the image's geometry gives."""
    want = conv_output_hw(who, hw, (kh, kw), (sh, sw), (ph, pw))
    if (oh, ow) != want:
        raise ValueError(f"{who}: output {oh}x{ow} does not match the {hw[0]}x{hw[1]} input "
                         f"(kernel {kh}x{kw}, stride {sh},{sw}, pad {ph},{pw}): expected "
                         f"{want[0]}x{want[1]}")


def _check_t(who, x4, col, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """The compiled loops index x4[n0:n1] and col (C*KH*KW, (n1-n0)*OH*OW) unchecked."""
    _check_geometry(who, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    if x4.ndim != 4:
        raise ValueError(f"{who}: expected a 4-D (N, C, H, W) array, got shape {x4.shape}")
    _check_output_hw(who, x4.shape[2:], kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    N, C = x4.shape[:2]
    shape = (C * kh * kw, (n1 - n0) * oh_n * ow_n)
    if not 0 <= n0 < n1 <= N:
        raise ValueError(f"{who}: sample range [{n0}, {n1}) outside a batch of {N}")
    if (col.shape != shape or col.dtype != x4.dtype or not col.flags.c_contiguous
            or not x4.flags.c_contiguous):
        raise ValueError(f"{who}: expected C-contiguous {x4.dtype} arrays, col of shape "
                         f"{shape}; got col {col.dtype} {col.shape} and x {x4.dtype} {x4.shape}")


def im2col_t(x, col, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """x[n0:n1] (nb, C, H, W) -> col (C*KH*KW, nb*OH*OW), written in place; returns col.

    The transpose of the book's col for that slice of the batch, computed in
    the calling thread (cdl.kernels.parallel runs slices side by side).
    Geometry is validated by the caller (cdl.kernels.conv); shapes and dtypes here.
    """
    _check_t("im2col_t", x, col, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    ext = _compiled()
    if ext is not None:
        ext.im2col_t(x, col, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    else:
        _im2col_t_nb(x, col, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    return col


def col2im_t(col, dx, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """Adjoint of im2col_t: overwrites dx[n0:n1] with col summed onto its pixels; returns dx."""
    _check_t("col2im_t", dx, col, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    ext = _compiled()
    if ext is not None:
        ext.col2im_t(col, dx, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    else:
        _col2im_t_nb(col, dx, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    return dx


def _check_out(who, a, out, shape):
    """The compiled loops write out (shape, a's dtype, C-contiguous) unchecked."""
    if out.shape != shape or out.dtype != a.dtype or not out.flags.c_contiguous \
            or not a.flags.c_contiguous:
        raise ValueError(f"{who}: expected C-contiguous {a.dtype} arrays, out of shape {shape}; "
                         f"got out {out.dtype} {out.shape}")


def im2col_rows(x, kh, kw, sh, sw, ph, pw, oh, ow, out):
    """out (N*OH*OW, C*KH*KW) = the windows of x (N, C, H, W), one per row; returns out.

    The book's layout: row (n*OH + oh)*OW + ow, column (c*KH + i)*KW + j holds
    x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 in the padding). Geometry is
    validated by cdl.ops (C ints here).
    """
    _check_geometry("im2col", kh, kw, sh, sw, ph, pw, oh, ow)
    _check_output_hw("im2col", x.shape[2:], kh, kw, sh, sw, ph, pw, oh, ow)
    N, C = x.shape[:2]
    _check_out("im2col", x, out, (N * oh * ow, C * kh * kw))
    ext = _compiled()
    fn = ext.im2col_rows if ext is not None else _im2col_rows_nb
    P = oh * ow  # rows of out per sample: a slice of samples is a block of rows
    run_slices(lambda a, z: fn(x[a:z], out[a * P:z * P], kh, kw, sh, sw, ph, pw, oh, ow),
               N, work=out.size)
    return out


def col2im_rows(col, kh, kw, sh, sw, ph, pw, oh, ow, out):
    """out (N, C, H, W) = col (N*OH*OW, C*KH*KW) summed onto its pixels (overwritten);
    returns out.

    The adjoint of im2col: overlapping windows add up, padding is dropped.
    """
    _check_geometry("col2im", kh, kw, sh, sw, ph, pw, oh, ow)
    _check_output_hw("col2im", out.shape[2:], kh, kw, sh, sw, ph, pw, oh, ow)
    N, C = out.shape[:2]
    _check_out("col2im", col, out, out.shape)
    if col.shape != (N * oh * ow, C * kh * kw):
        raise ValueError(f"col2im: col of shape {col.shape} does not match out {out.shape}: "
                         f"expected {(N * oh * ow, C * kh * kw)}")
    ext = _compiled()
    fn = ext.col2im_rows if ext is not None else _col2im_rows_nb
    P = oh * ow

    def fold(a, z):  # each slice owns whole samples: no two threads add onto one pixel
        out[a:z].fill(0)  # the compiled loops add onto out
        fn(col[a * P:z * P], out[a:z], kh, kw, sh, sw, ph, pw, oh, ow)

    run_slices(fold, N, work=col.size)
    return out


# im2col_t and col2im_t are the convolution's helpers (cdl.kernels.conv), not kernels of
# their own; the CUDA convolution has its twins in cdl.cuda.im2col
__all__ = ["im2col_rows", "col2im_rows"]
