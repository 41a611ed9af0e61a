"""im2col / col2im: the one door to the Cython extension ``cdl._im2col``.

The wrapper checks dtype, contiguity and shapes and allocates outputs; the
compiled loops trust it. When the extension is missing (a source checkout
that was never built), cdl says so once and uses the Numba twins below,
which compute the same thing.

Layout: the book's ``util.im2col``, col of shape (N*OH*OW, C*KH*KW), with
the index mapping documented in ``csrc/im2col.pyx``.
"""
import warnings

import numpy as np
from numba import njit, prange

try:
    from cdl import _im2col
except ImportError:  # pragma: no cover - exercised only on unbuilt checkouts
    _im2col = None

_warned = False


def _compiled():
    """The Cython module, or None after warning once that it is missing."""
    global _warned
    if _im2col is None and not _warned:
        warnings.warn(
            "cdl's Cython extension cdl._im2col is not built; using the slower Numba "
            "im2col. Build it with `pip install .` (or `python setup.py build_ext --inplace`).",
            RuntimeWarning, stacklevel=3)
        _warned = True
    return _im2col


@njit(parallel=True, cache=True)
def _im2col_rows_nb(x, col, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    N, C, H, W = x.shape
    for n in prange(N):
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


@njit(parallel=True, cache=True)
def _col2im_rows_nb(col, dx, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    N, C, H, W = dx.shape
    for n in prange(N):
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


def im2col(x, kh, kw, sh, sw, ph, pw, oh_n, ow_n, out=None):
    """x (N, C, H, W) -> col (N*OH*OW, C*KH*KW). Geometry already validated."""
    N, C = x.shape[:2]
    shape = (N * oh_n * ow_n, C * kh * kw)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"im2col: out must be C-contiguous {x.dtype} {shape}, "
                         f"got {out.dtype} {out.shape}")
    ext = _compiled()
    fn = ext.im2col_rows if ext is not None else _im2col_rows_nb
    fn(x, out, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    return out


def col2im(col, x_shape, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """col (N*OH*OW, C*KH*KW) -> dx (N, C, H, W), overlapping windows summed."""
    dx = np.zeros(x_shape, dtype=col.dtype)
    ext = _compiled()
    fn = ext.col2im_rows if ext is not None else _col2im_rows_nb
    fn(col, dx, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    return dx
