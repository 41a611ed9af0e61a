"""Bit-packed binary kernels: sign packing, packed im2col and pooling, XNOR/popcount GEMM.

Bit packing (the one definition; other code points here)
--------------------------------------------------------
A row of n values is binarized to signs, +1 where x >= 0 and -1 elsewhere,
and stored as W = ceil(n / 64) uint64 words: element j is bit j % 64 of
word j // 64, bit 1 for +1 and bit 0 for -1, and the W*64 - n tail bits are
0. Two packed rows a and b of the same n agree where their bits agree, so
their dot product as +-1 vectors is

    dot(a, b) = (n - d) - d = n - 2 * popcount(a XOR b),

with d the number of disagreeing positions; zero tails never disagree.
Images are packed per pixel, (N, H, W, ceil(C/64)) words with bit c the sign
of channel c (``pack_channels``), and convolutions pack their reduction axis
KH*KW*C in (i, j, c) order, channel fastest (``im2col_bits``; the weights in
the same order), so that a window gathers whole words of packed channels.

The kernels in ``__all__`` have CUDA twins in ``cdl.cuda.binary`` (same
names and arguments, one thread per output word or product). Arrays are
C-contiguous and the callers (``cdl.binary``, ``cdl.packed``) validate them.

The XNOR/popcount GEMM ``xnor_gemm``, its CPU variants and the choice
between them live in the private ``_binary_gemm`` (with the kernels in
``_binary_tiles`` and ``_binary_hybrid``); their names are re-exported here.
"""
import numpy as np
from numba import njit, prange

from cdl.kernels._binary_gemm import (VARIANTS, applicable_variants, forced_variant,
                                      gemm_variant, xnor_gemm)
from cdl.kernels._binary_tiles import pack_panels

_U = np.uint64


# -- packing -------------------------------------------------------------

@njit(parallel=True, cache=True)
def _pack_signs(x, out):
    """out (R, W) uint64 = sign bits of x (R, n): bit 1 where x >= 0 (see module doc)."""
    R, n = x.shape
    W = out.shape[1]
    for r in prange(R):
        for w in range(W):
            j0 = w * 64
            m = min(64, n - j0)
            word = _U(0)
            for t in range(m):
                if x[r, j0 + t] >= 0:
                    word |= _U(1) << _U(t)
            out[r, w] = word


@njit(parallel=True, cache=True)
def _unpack_signs(p, out):
    """out (R, n) = +1 where bit j of p (R, W) is set, -1 elsewhere (float)."""
    R, n = out.shape
    for r in prange(R):
        for j in range(n):
            bit = (p[r, j // 64] >> _U(j % 64)) & _U(1)
            out[r, j] = 1.0 if bit else -1.0


@njit(parallel=True, cache=True)
def _pack_channels(x, out):
    """out (N, H, W, WC) uint64: the signs of each pixel's C channels of x (N, C, H, W), packed.

    Bit c of pixel (n, y, x) is x[n, c, y, x] >= 0; WC = ceil(C/64), tails 0.
    This pixel-major layout is what ``im2col_bits`` gathers from.
    """
    N, C, H, Wd = x.shape
    WC = out.shape[3]
    for ny in prange(N * H):
        n, y = ny // H, ny % H
        for xx in range(Wd):
            for w in range(WC):
                word = _U(0)
                for t in range(min(64, C - 64 * w)):
                    if x[n, 64 * w + t, y, xx] >= 0:
                        word |= _U(1) << _U(t)
                out[n, y, xx, w] = word


@njit(parallel=True, cache=True)
def _im2col_bits(px, C, kh, kw, sh, sw, ph, pw, oh_n, ow_n, out):
    """out (N*OH*OW, ceil(KH*KW*C/64)): the packed bits of each window of px (N, H, W, WC).

    Row (n, oh, ow) holds bit t = (i*KW + j)*C + c for channel c of pixel
    (oh*SH - PH + i, ow*SW - PW + j): the reduction axis of the conv in
    (i, j, c) order, so a tap copies its pixel's C bits as whole words
    (shifted into place) rather than bit by bit. Padded taps get C zero
    bits, i.e. -1: ``cdl.binary.binary_conv2d`` documents the correction
    that turns this into zero padding.
    """
    N, H, Wd, WC = px.shape
    Wk = out.shape[1]
    for nh in prange(N * oh_n):
        n, oh = nh // oh_n, nh % oh_n
        for ow in range(ow_n):
            row = nh * ow_n + ow
            for w in range(Wk):
                out[row, w] = 0
            cur = 0  # next free bit of the row
            for i in range(kh):
                y = oh * sh - ph + i
                for j in range(kw):
                    xx = ow * sw - pw + j
                    if 0 <= y < H and 0 <= xx < Wd:
                        for w in range(WC):
                            v = px[n, y, xx, w]
                            q, r = cur // 64, cur % 64
                            out[row, q] |= v << _U(r)
                            if r and r + min(64, C - 64 * w) > 64:
                                out[row, q + 1] |= v >> _U(64 - r)
                            cur += min(64, C - 64 * w)
                    else:
                        cur += C


@njit(parallel=True, cache=True)
def _maxpool_bits(px, up, kh, kw, sh, sw, ph, pw, out):
    """Max pooling of thresholded channels, on packed pixels px (N, H, W, WC) -> out (N, OH, OW, WC).

    A channel's bit is z >= t (up) or z <= t (down) of its pre-activation z,
    so the bit of max(z) over a window is the OR of the window's bits for
    up channels and their AND for down channels; ``up`` (WC,) holds the up
    channels as a bit mask. Padding never wins, as in MaxPool2D.
    """
    N, H, Wd, WC = px.shape
    OH, OW = out.shape[1], out.shape[2]
    for nh in prange(N * OH):
        n, oh = nh // OH, nh % OH
        y0 = oh * sh - ph
        for ow in range(OW):
            x0 = ow * sw - pw
            for w in range(WC):
                any_, all_ = _U(0), ~_U(0)
                for y in range(max(y0, 0), min(y0 + kh, H)):
                    for xx in range(max(x0, 0), min(x0 + kw, Wd)):
                        v = px[n, y, xx, w]
                        any_ |= v
                        all_ &= v
                out[n, oh, ow, w] = (any_ & up[w]) | (all_ & ~up[w])


@njit(parallel=True, cache=True)
def _threshold_pack(z, thr, up, out):
    """out (R, ceil(F/64)) packed bits of z (R, F): bit f = z >= thr[f] if up[f] else z <= thr[f]."""
    R, F = z.shape
    W = out.shape[1]
    for r in prange(R):
        for w in range(W):
            word = _U(0)
            for t in range(min(64, F - w * 64)):
                f = w * 64 + t
                v = z[r, f]
                if (v >= thr[f]) if up[f] else (v <= thr[f]):
                    word |= _U(1) << _U(t)
            out[r, w] = word


def pack_signs(x, out):
    """out (R, W) uint64 = sign bits of x (R, n), bit 1 where x >= 0; returns out."""
    _pack_signs(x, out)
    return out


def unpack_signs(p, out):
    """out (R, n) float = +1 where bit j of p (R, W) is set, else -1; returns out."""
    _unpack_signs(p, out)
    return out


def pack_channels(x, out):
    """out (N, H, W, WC) uint64: each pixel's channel signs of x (N, C, H, W); returns out."""
    _pack_channels(x, out)
    return out


def im2col_bits(px, C, kh, kw, sh, sw, ph, pw, oh_n, ow_n, out):
    """out (N*OH*OW, ceil(KH*KW*C/64)): the packed windows of px (N, H, W, WC); returns out."""
    _im2col_bits(px, C, kh, kw, sh, sw, ph, pw, oh_n, ow_n, out)
    return out


def maxpool_bits(px, up, kh, kw, sh, sw, ph, pw, out):
    """out (N, OH, OW, WC): max pooling of thresholded packed pixels px; returns out."""
    _maxpool_bits(px, up, kh, kw, sh, sw, ph, pw, out)
    return out


def threshold_pack(z, thr, up, out):
    """out (R, ceil(F/64)): bit f of row r = z >= thr[f] if up[f] else z <= thr[f]; returns out."""
    _threshold_pack(z, thr, up, out)
    return out


# The kernels with CUDA twins (cdl.cuda.binary), xnor_gemm among them (re-exported from
# _binary_gemm: this is the kernel module that cdl.kernels and cdl.cuda list).
__all__ = ["pack_signs", "unpack_signs", "pack_channels", "im2col_bits", "maxpool_bits",
           "threshold_pack", "xnor_gemm"]

# CPU tuning of xnor_gemm, re-exported for the tuner's tests and the benchmarks; no twins.
_CPU_ONLY = (VARIANTS, applicable_variants, forced_variant, gemm_variant, pack_panels)
