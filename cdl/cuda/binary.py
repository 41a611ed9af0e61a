"""Bit-packed binary kernels on the GPU: twins of cdl.kernels.binary.

The bit layout is specified in ``cdl.kernels.binary``'s docstring. One
thread per output word (packing, im2col, pooling, thresholds) or per output
element (unpacking, the GEMM), grid-stride loops; popcounts by ``cuda.popc``
(numba's CUDA simulator has it too, so no fallback is needed).
"""
import numpy as np
from numba import cuda

from cdl.cuda._launch import grid
from cdl.cuda._minmax import max2, min2

_U = np.uint64
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@cuda.jit
def _pack_signs_k(x, out):
    R, n = x.shape
    W = out.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, R * W, step):
        r, w = k // W, k % W
        word = _U(0)
        for t in range(min2(64, n - 64 * w)):
            if x[r, 64 * w + t] >= 0:
                word |= _U(1) << _U(t)
        out[r, w] = word


@cuda.jit
def _unpack_signs_k(p, out):
    R, n = out.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, R * n, step):
        r, j = k // n, k % n
        bit = (p[r, j // 64] >> _U(j % 64)) & _U(1)
        out[r, j] = 1.0 if bit else -1.0


@cuda.jit
def _pack_channels_k(x, out):
    N, C, H, Wd = x.shape
    WC = out.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, out.size, step):
        # k = ((n*H + y)*Wd + xx)*WC + w
        w = k % WC
        xx = (k // WC) % Wd
        y = (k // (WC * Wd)) % H
        n = k // (WC * Wd * H)
        word = _U(0)
        for t in range(min2(64, C - 64 * w)):
            if x[n, 64 * w + t, y, xx] >= 0:
                word |= _U(1) << _U(t)
        out[n, y, xx, w] = word


@cuda.jit
def _im2col_bits_k(px, C, kh, kw, sh, sw, ph, pw, oh_n, ow_n, out):
    N, H, Wd, WC = px.shape
    rows, Wk = out.shape
    n_bits = C * kh * kw
    start, step = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, rows * Wk, step):
        row, q = k // Wk, k % Wk
        n, pix = row // (oh_n * ow_n), row % (oh_n * ow_n)
        y0, x0 = (pix // ow_n) * sh - ph, (pix % ow_n) * sw - pw
        word = _U(0)
        # bit b = (i*KW + j)*C + c of the row; padded taps stay 0 (-1), as on the CPU
        for t in range(min2(64, n_bits - 64 * q)):
            b = 64 * q + t
            tap, c = b // C, b % C
            y, xx = y0 + tap // kw, x0 + tap % kw
            if 0 <= y < H and 0 <= xx < Wd:
                word |= ((px[n, y, xx, c // 64] >> _U(c % 64)) & _U(1)) << _U(t)
        out[row, q] = word


@cuda.jit
def _maxpool_bits_k(px, up, kh, kw, sh, sw, ph, pw, out):
    N, H, Wd, WC = px.shape
    OH, OW = out.shape[1], out.shape[2]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, out.size, step):
        w = k % WC
        ow = (k // WC) % OW
        oh = (k // (WC * OW)) % OH
        n = k // (WC * OW * OH)
        y0, x0 = oh * sh - ph, ow * sw - pw
        any_, all_ = _U(0), _ALL
        for y in range(max2(y0, 0), min2(y0 + kh, H)):
            for xx in range(max2(x0, 0), min2(x0 + kw, Wd)):
                v = px[n, y, xx, w]
                any_ |= v
                all_ &= v
        out[n, oh, ow, w] = (any_ & up[w]) | (all_ & ~up[w])


@cuda.jit
def _threshold_pack_k(z, thr, up, out):
    R, F = z.shape
    W = out.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, R * W, step):
        r, w = k // W, k % W
        word = _U(0)
        for t in range(min2(64, F - 64 * w)):
            f = 64 * w + t
            v = z[r, f]
            if (v >= thr[f]) if up[f] else (v <= thr[f]):
                word |= _U(1) << _U(t)
        out[r, w] = word


@cuda.jit
def _xnor_gemm_k(a, b, n, last_mask, out):
    M, W = a.shape
    N = b.shape[0]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, M * N, step):
        i, j = k // N, k % N
        s = 0
        for q in range(W - 1):
            s += np.int64(cuda.popc(a[i, q] ^ b[j, q]))
        # the tail bits are masked rather than trusted: checking them would copy a and b back
        s += np.int64(cuda.popc((a[i, W - 1] ^ b[j, W - 1]) & last_mask))
        out[i, j] = n - 2 * s


def pack_signs(x, out):
    """out (R, W) uint64 = sign bits of x (R, n): bit 1 where x >= 0."""
    if out.size:
        _pack_signs_k[grid(out.size)](x, out)
    return out


def unpack_signs(p, out):
    """out (R, n) = +1 where bit j of p (R, W) is set, -1 elsewhere (float)."""
    if out.size:
        _unpack_signs_k[grid(out.size)](p, out)
    return out


def pack_channels(x, out):
    """out (N, H, W, WC) uint64: the signs of each pixel's C channels of x (N, C, H, W)."""
    if out.size:
        _pack_channels_k[grid(out.size)](x, out)
    return out


def im2col_bits(px, C, kh, kw, sh, sw, ph, pw, oh_n, ow_n, out):
    """out (N*OH*OW, ceil(KH*KW*C/64)): the packed bits of each window of px (N, H, W, WC)."""
    if out.size:
        _im2col_bits_k[grid(out.size)](px, C, kh, kw, sh, sw, ph, pw, oh_n, ow_n, out)
    return out


def maxpool_bits(px, up, kh, kw, sh, sw, ph, pw, out):
    """Max pooling of thresholded channels on packed pixels px (N, H, W, WC) -> out."""
    if out.size:
        _maxpool_bits_k[grid(out.size)](px, up, kh, kw, sh, sw, ph, pw, out)
    return out


def threshold_pack(z, thr, up, out):
    """out (R, ceil(F/64)): bit f = z >= thr[f] if up[f] else z <= thr[f], for z (R, F)."""
    if out.size:
        _threshold_pack_k[grid(out.size)](z, thr, up, out)
    return out


def xnor_gemm(a, b, n, out):
    """out (M, N) int32 = n - 2*popcount(a (M, W) XOR b (N, W)): the +-1 dot products.

    Bits at positions >= n are ignored (masked), where the CPU kernel needs them 0.
    """
    M, W = a.shape
    if (b.ndim != 2 or b.shape[1] != W or out.shape != (M, b.shape[0])
            or not (a.dtype == b.dtype == np.uint64) or out.dtype != np.int32
            or not 0 < n <= min(64 * W, 2**31 - 1)):
        raise ValueError(f"xnor_gemm: needs uint64 a (M, W), b (N, W), int32 out (M, N) and "
                         f"0 < n <= 64*W, n < 2^31; got a {a.dtype}{a.shape}, b "
                         f"{b.dtype}{b.shape}, out {out.dtype}{out.shape}, n {n}")
    r = n - 64 * (W - 1)  # valid bits of the last word, 1..64
    mask = _ALL if r == 64 else _U((1 << r) - 1)
    if out.size:
        _xnor_gemm_k[grid(out.size)](a, b, n, mask, out)
    return out


__all__ = ["pack_signs", "unpack_signs", "pack_channels", "im2col_bits", "maxpool_bits",
           "threshold_pack", "xnor_gemm"]
