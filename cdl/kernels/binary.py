"""Bit-packed binary kernels: sign packing, XNOR/popcount GEMM, packed im2col.

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

The GEMM kernels (``xnor_gemm``, chosen per CPU and product shape)
------------------------------------------------------------------
By measurement (``cdl.kernels.tuner``: the first call of an (M, N, W) product
times the variants on its arrays, cached on disk), with ``gemm_variant``'s
rule below as the fallback (tiny products, policy "heuristic", variants not
compiled yet). Tests and benchmarks force one with
``with forced_variant("scalar"): ...``.
XOR + popcount + add is three integer operations per 64-bit word pair.

- "vector": with a vector popcount (AVX-512 VPOPCNTDQ), or off x86, LLVM
  vectorizes the word loop of a 2 x 4 tile (vpxor/vpopcntq/vpaddq), and that
  wins.
- "hybrid" (x86 with AVX2, no VPOPCNTDQ): AVX2 has no popcount; LLVM's vector
  form is a nibble lookup (vpand, vpsrlw, 2 x vpshufb, vpaddb, vpsadbw per
  4 words) that alone is slower than the scalar ``popcnt`` pipes, and the
  scalar pipes alone are bound by three ALU ops per word on 4 ALUs. So each
  panel of 8 rows of b is split: rows 0-3 through scalar popcnt (as
  popcount(~a & b) with BMI1's three-operand andn, corrected by the row
  popcounts), rows 4-7 through the lookup, in one loop over groups of 4
  words, so the integer ALUs and the vector pipes work at once. The lookup
  half is stored pre-split into nibbles (so a word costs vpxor + vpshufb +
  vpaddb per nibble, no masking), and a row of a meets the 4 vector rows as
  one ymm per group. That loop is written in LLVM IR (``_hybrid_panel``):
  Numba values cannot hold vectors.
- "scalar" (x86 without AVX2; with AVX2, small products and short rows, see
  ``_hybrid_pays``): the 1 x 8 register tile of popcnt alone.

The scalar loops keep LLVM from vectorizing them with an empty inline-asm
barrier. bench/binary.py times the variants (the hybrid section below gives
its bound in words per cycle); ``python bench/binary.py --asm`` prints each
inner loop.
"""
import functools
import os

import numpy as np
from llvmlite import binding as _llvm
from llvmlite import ir as _ir
import numba
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from cdl.kernels import tuner

_U = np.uint64


@intrinsic
def _popcount(typingctx, x):
    """llvm.ctpop on a uint64 (Numba 0.68 has no np.bitwise_count)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@intrinsic
def _scalar_barrier(typingctx, x):
    """x unchanged, through an empty inline-asm statement that emits no instruction.

    LLVM cannot vectorize a loop across inline asm, so the loop around it
    keeps scalar popcnt (the fast choice without a vector popcount).
    """
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        return builder.asm(_ir.FunctionType(ty, [ty]), "", "=r,0", [args[0]],
                           side_effect=False)
    return types.uint64(types.uint64), codegen


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


# -- XNOR / popcount GEMM ---------------------------------------------------

NR = 8  # b rows per panel: one 64-byte cache line per word index k


def pack_panels(b):
    """b (N, W) -> (ceil(N/NR), W, NR) with word k of row p*NR + r at [p, k, r]; pad rows zero."""
    N, W = b.shape
    P = -(-N // NR)
    panels = np.zeros((P * NR, W), dtype=np.uint64)
    panels[:N] = b
    return np.ascontiguousarray(panels.reshape(P, NR, W).transpose(0, 2, 1))


@njit(cache=True, inline="always")
def _store_panel(out, i, j, n, sums):
    """out[i, j:j+NR] = n - 2*sums (the NR popcount sums of one panel), clipped to out's width."""
    if j + NR <= out.shape[1]:
        out[i, j] = n - 2 * np.int64(sums[0])
        out[i, j + 1] = n - 2 * np.int64(sums[1])
        out[i, j + 2] = n - 2 * np.int64(sums[2])
        out[i, j + 3] = n - 2 * np.int64(sums[3])
        out[i, j + 4] = n - 2 * np.int64(sums[4])
        out[i, j + 5] = n - 2 * np.int64(sums[5])
        out[i, j + 6] = n - 2 * np.int64(sums[6])
        out[i, j + 7] = n - 2 * np.int64(sums[7])
    else:
        for r in range(out.shape[1] - j):
            out[i, j + r] = n - 2 * np.int64(sums[r])


@njit(parallel=True, cache=True)
def _gemm_panels(a, bp, n, out, rows_per_task, panels_per_task):
    """out (M, N) = n - 2*popcount(a[i] ^ b[j]) with b as panels (scalar popcnt, 1 x NR tile).

    Tasks are (block of rows of a) x (chunk of panels of b), so a chunk of b
    stays in L1 while a block of rows sweeps over it; each task keeps the
    NR sums of one row of a against one panel in registers for all W words.
    """
    M, W = a.shape
    P = bp.shape[0]
    flat = bp.reshape(-1)
    n_i = (M + rows_per_task - 1) // rows_per_task
    n_j = (P + panels_per_task - 1) // panels_per_task
    for task in prange(n_i * n_j):
        i0 = (task // n_j) * rows_per_task
        p0 = (task % n_j) * panels_per_task
        for i in range(i0, min(i0 + rows_per_task, M)):
            for p in range(p0, min(p0 + panels_per_task, P)):
                # uint64 offsets: no negative-index wraparound code in the loop
                base = _U(p * W * NR)
                s0 = _U(0)
                s1 = _U(0)
                s2 = _U(0)
                s3 = _U(0)
                s4 = _U(0)
                s5 = _U(0)
                s6 = _U(0)
                s7 = _U(0)
                for k in range(W):
                    x = _scalar_barrier(a[i, k])
                    o = base + _U(k * NR)
                    s0 += _popcount(x ^ flat[o])
                    s1 += _popcount(x ^ flat[o + _U(1)])
                    s2 += _popcount(x ^ flat[o + _U(2)])
                    s3 += _popcount(x ^ flat[o + _U(3)])
                    s4 += _popcount(x ^ flat[o + _U(4)])
                    s5 += _popcount(x ^ flat[o + _U(5)])
                    s6 += _popcount(x ^ flat[o + _U(6)])
                    s7 += _popcount(x ^ flat[o + _U(7)])
                _store_panel(out, i, p * NR, n, (s0, s1, s2, s3, s4, s5, s6, s7))


@njit(parallel=True, cache=True)
def _gemm_rows(a, b, n, out, rows_per_task, cols_per_task):
    """out (M, N) = n - 2*popcount(a[i] ^ b[j]), 2 x 4 tiles, word loop left to the vectorizer.

    With a vector popcount (AVX-512 VPOPCNTDQ) LLVM turns the k loop into
    vpxor/vpopcntq/vpaddq on 4 or 8 words at a time.
    """
    M, W = a.shape
    N = b.shape[0]
    n_i = (M + rows_per_task - 1) // rows_per_task
    n_j = (N + cols_per_task - 1) // cols_per_task
    for task in prange(n_i * n_j):
        i0 = (task // n_j) * rows_per_task
        j0 = (task % n_j) * cols_per_task
        i1 = min(i0 + rows_per_task, M)
        j1 = min(j0 + cols_per_task, N)
        for i in range(i0, i1, 2):
            ia = i
            ib = min(i + 1, i1 - 1)  # an odd last row is computed twice, written once
            for j in range(j0, j1, 4):
                ja, jb = j, min(j + 1, j1 - 1)
                jc, jd = min(j + 2, j1 - 1), min(j + 3, j1 - 1)
                s0 = _U(0)
                s1 = _U(0)
                s2 = _U(0)
                s3 = _U(0)
                s4 = _U(0)
                s5 = _U(0)
                s6 = _U(0)
                s7 = _U(0)
                for k in range(W):
                    x, y = a[ia, k], a[ib, k]
                    s0 += _popcount(x ^ b[ja, k])
                    s1 += _popcount(x ^ b[jb, k])
                    s2 += _popcount(x ^ b[jc, k])
                    s3 += _popcount(x ^ b[jd, k])
                    s4 += _popcount(y ^ b[ja, k])
                    s5 += _popcount(y ^ b[jb, k])
                    s6 += _popcount(y ^ b[jc, k])
                    s7 += _popcount(y ^ b[jd, k])
                out[ia, ja] = n - 2 * np.int64(s0)
                out[ia, jb] = n - 2 * np.int64(s1)
                out[ia, jc] = n - 2 * np.int64(s2)
                out[ia, jd] = n - 2 * np.int64(s3)
                out[ib, ja] = n - 2 * np.int64(s4)
                out[ib, jb] = n - 2 * np.int64(s5)
                out[ib, jc] = n - 2 * np.int64(s6)
                out[ib, jd] = n - 2 * np.int64(s7)


# -- the hybrid kernel (x86 AVX2 without a vector popcount) ----------------------
#
# A panel of NR = 8 rows of b is split between the two execution domains:
# rows 0-3 go through scalar popcnt on the integer ALUs, rows 4-7 through an
# AVX2 nibble lookup on the vector pipes, in the same loop, so both domains
# work at once. The loop steps over groups of _KG = 4 words.
#
# Scalar half: popcount(a ^ b) = popcount(a) - popcount(b) + 2 * popcount(~a & b)
# (the bits where a and b differ are those of a & ~b and of ~a & b, and
# popcount(a & ~b) = popcount(a) - popcount(b) + popcount(~a & b)). BMI1's
# three-operand ``andn`` computes ~a & b with b straight from memory, where
# xor, which overwrites its operand, needs a copy of a for every b: 3 instead
# of 4 instructions a word. The row popcounts are added once per output.
#
# Vector half: a and b are stored pre-split into nibbles (x & 0x0F.. and
# (x >> 4) & 0x0F..), which saves the vpand / vpsrlw / vpand of the usual
# lookup: popcount(a ^ b) per byte is LUT[a_lo ^ b_lo] + LUT[a_hi ^ b_hi].
# One ymm holds the 4 words of a group of one row, so a row of a is loaded
# once per group and meets each of the 4 b rows with two vpxor (b from
# memory), two vpshufb and two vpaddb into that b row's byte counters. A
# group adds at most 8 to a byte counter, so the counters are summed into
# 64-bit lanes (vpsadbw) every _KB = 31 groups (31 * 8 = 248 < 256). See Mula,
# Kurz, Lemire, "Faster population counts using AVX2 instructions" (2016).
#
# Per group of 32 word pairs the loop is 82 instructions: 16 andn + 16 popcnt
# + 16 add + 4 loads of a on the integer side, 8 vpxor + 8 vpshufb + 8 vpaddb
# + 2 loads of a on the vector side; with 256-bit operations split in two on
# Zen 1 that is about 107 macro-ops and 40 loads of 16 bytes or less, for a
# bound near 20 cycles (2 loads a cycle), ~1.6 words a cycle.

_HALF = NR // 2     # panel rows counted by scalar popcnt; the other half by the vector lookup
_KG = 4             # words per group: one ymm of nibbles
_A_GROUP = 3 * _KG  # words of a per group: 4 raw, 4 low nibbles, 4 high nibbles
_B_GROUP = _KG * _HALF + 2 * _KG * (NR - _HALF)  # 16 raw (word-major), then per vector row
#                                                  4 low and 4 high nibble words
_KB = 31            # groups per byte-counter block (see above)
_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)

_I8, _I32, _I64 = _ir.IntType(8), _ir.IntType(32), _ir.IntType(64)
_V32B, _V4Q, _V8Q = _ir.VectorType(_I8, 32), _ir.VectorType(_I64, 4), _ir.VectorType(_I64, NR)
_V4I32, _V8D = _ir.VectorType(_I32, 4), _ir.VectorType(_I32, NR)


@njit(cache=True)
def _pack_hybrid_a(a, i0, out, pop):
    """out (R, G, 12), pop (R,) from rows i0 .. i0+R-1 of a (M, W): per group of 4 words the
    words, their low nibbles and their high nibbles (shifted down), words past W zero; pop
    the rows' popcounts."""
    W = a.shape[1]
    R, G = out.shape[0], out.shape[1]
    for i in range(R):
        total = 0
        for g in range(G):
            for t in range(_KG):
                k = g * _KG + t
                v = a[i0 + i, k] if k < W else _U(0)
                total += np.int64(_popcount(v))
                out[i, g, t] = v
                out[i, g, _KG + t] = v & _NIBBLES
                out[i, g, 2 * _KG + t] = (v >> _U(4)) & _NIBBLES
        pop[i] = total


# Serial: b is packed once per product, before the parallel loop (about 0.1 ms for
# 1024 x 64 words), and a parallel launch of its own costs more than that when the
# other core is busy.
@njit(cache=True)
def _pack_hybrid_b(b, out, pop):
    """out (P, G, 48) from b (N, W), per panel of 8 rows and group of 4 words: rows 0-3's words
    (word-major), then for each of rows 4-7 its 4 low and 4 high nibble words; pad rows and
    words past W zero. pop (P*8,) the rows' popcounts (pad rows 0)."""
    N, W = b.shape
    P, G = out.shape[0], out.shape[1]
    for p in range(P):
        for r in range(NR):
            row = p * NR + r
            total = 0
            for g in range(G):
                for t in range(_KG):
                    k = g * _KG + t
                    v = b[row, k] if row < N and k < W else _U(0)
                    total += np.int64(_popcount(v))
                    if r < _HALF:
                        out[p, g, t * _HALF + r] = v
                    else:
                        o = _KG * _HALF + 2 * _KG * (r - _HALF)
                        out[p, g, o + t] = v & _NIBBLES
                        out[p, g, o + _KG + t] = (v >> _U(4)) & _NIBBLES
            pop[row] = total


def _opaque(builder, x):
    """x through an empty inline-asm statement: no instruction, but LLVM cannot see through it."""
    return builder.asm(_ir.FunctionType(x.type, [x.type]), "", "=r,0", [x], side_effect=False)


@intrinsic
def _hybrid_panel(typingctx, asp, i, bs, p, G, pop_a, pop_b, n, out, row):
    """out[row, 8p:8p+8] = n - 2*popcount(a[i] ^ b[j]) for the 8 rows j of panel p (clipped
    to out's width).

    asp, bs: the flat packed forms of a and b (``_pack_hybrid_a``,
    ``_pack_hybrid_b``), G groups of 4 words a row, pop_a and pop_b their
    row popcounts. Panel rows 0-3 sum popcount(~a & b) over the words (scalar
    andn/popcnt) and become popcount(a ^ b) = pop_a - pop_b + 2 * sum; rows
    4-7 sum popcount(a ^ b) (llvm.x86.avx2.pshuf.b lookups into byte
    counters, folded into 64-bit lanes with llvm.x86.avx2.psad.bw every _KB
    groups). The 8 results are stored as one vector where the panel fits.
    Written in LLVM IR because the loop holds vectors, which Numba values
    cannot. Needs AVX2 (and BMI1 for andn, which every AVX2 CPU has).
    """
    def codegen(context, builder, sig, args):
        arr_a = context.make_array(sig.args[0])(context, builder, args[0])
        arr_b = context.make_array(sig.args[2])(context, builder, args[2])
        arr_pa = context.make_array(sig.args[5])(context, builder, args[5])
        arr_pb = context.make_array(sig.args[6])(context, builder, args[6])
        arr_out = context.make_array(sig.args[8])(context, builder, args[8])
        i_, p_, G_, n_, row_ = (context.cast(builder, args[k], sig.args[k], types.int64)
                                for k in (1, 3, 4, 7, 9))
        pa = builder.gep(arr_a.data, [builder.mul(i_, builder.mul(G_, _I64(_A_GROUP)))])
        pb = builder.gep(arr_b.data, [builder.mul(p_, builder.mul(G_, _I64(_B_GROUP)))])
        v32 = _ir.FunctionType(_V32B, [_V32B, _V32B])
        pshufb = cgutils.get_or_insert_function(builder.module, v32, "llvm.x86.avx2.pshuf.b")
        psadbw = cgutils.get_or_insert_function(
            builder.module, _ir.FunctionType(_V4Q, [_V32B, _V32B]), "llvm.x86.avx2.psad.bw")
        lut = _ir.Constant(_V32B, [bin(v).count("1") for v in range(16)] * 2)
        zero_b = _ir.Constant(_V32B, None)
        nv = NR - _HALF

        def vload(ptr, off):
            return builder.load(builder.bitcast(builder.gep(ptr, [_I64(off)]),
                                                _V4Q.as_pointer()), align=8)

        entry = builder.basic_block
        block = builder.append_basic_block("hyb.block")
        body = builder.append_basic_block("hyb.body")
        block_end = builder.append_basic_block("hyb.block_end")
        done = builder.append_basic_block("hyb.done")
        builder.branch(block)

        # a block of up to _KB groups: fresh byte counters
        builder.position_at_end(block)
        g0 = builder.phi(_I64)
        q = [builder.phi(_V4Q) for _ in range(nv)]
        s_blk = [builder.phi(_I64) for _ in range(_HALF)]
        g0.add_incoming(_I64(0), entry)
        for v in q:
            v.add_incoming(_ir.Constant(_V4Q, None), entry)
        for s in s_blk:
            s.add_incoming(_I64(0), entry)
        g1 = builder.add(g0, _I64(_KB))
        gend = builder.select(builder.icmp_signed("<", g1, G_), g1, G_)
        builder.branch(body)

        # one group of 4 words
        builder.position_at_end(body)
        g = builder.phi(_I64)
        c = [builder.phi(_V32B) for _ in range(nv)]
        s_g = [builder.phi(_I64) for _ in range(_HALF)]
        g.add_incoming(g0, block)
        for v in c:
            v.add_incoming(zero_b, block)
        for s, s0 in zip(s_g, s_blk):
            s.add_incoming(s0, block)
        arow = builder.gep(pa, [builder.mul(g, _I64(_A_GROUP))])
        brow = builder.gep(pb, [builder.mul(g, _I64(_B_GROUP))])
        s_next = list(s_g)
        for t in range(_KG):
            # opaque ~a: the SLP vectorizer would otherwise turn the scalar half into a lookup too
            nx = builder.xor(_opaque(builder, builder.load(builder.gep(arow, [_I64(t)]))),
                             _I64(-1))
            for r in range(_HALF):
                w = builder.and_(nx, builder.load(builder.gep(brow, [_I64(t * _HALF + r)])))
                s_next[r] = builder.add(s_next[r], builder.ctpop(w))
        a_lo, a_hi = vload(arow, _KG), vload(arow, 2 * _KG)
        c_next = []
        for r in range(nv):
            o = _KG * _HALF + 2 * _KG * r
            lo = builder.call(pshufb, [lut, builder.bitcast(builder.xor(a_lo, vload(brow, o)),
                                                           _V32B)])
            hi = builder.call(pshufb, [lut, builder.bitcast(
                builder.xor(a_hi, vload(brow, o + _KG)), _V32B)])
            c_next.append(builder.add(c[r], builder.add(lo, hi)))
        g_next = builder.add(g, _I64(1))
        g.add_incoming(g_next, body)
        for v, vn in zip(c, c_next):
            v.add_incoming(vn, body)
        for s, sn in zip(s_g, s_next):
            s.add_incoming(sn, body)
        builder.cbranch(builder.icmp_signed("<", g_next, gend), body, block_end)

        # byte counters -> 64-bit lanes
        builder.position_at_end(block_end)
        q_next = [builder.add(v, builder.call(psadbw, [cn, zero_b])) for v, cn in zip(q, c_next)]
        g0.add_incoming(gend, block_end)
        for v, vn in zip(q, q_next):
            v.add_incoming(vn, block_end)
        for s, sn in zip(s_blk, s_next):
            s.add_incoming(sn, block_end)
        builder.cbranch(builder.icmp_signed("<", gend, G_), block, done)

        builder.position_at_end(done)
        # rows 0-3: pop_a[i] - pop_b[j] + 2 * sum, j = 8p .. 8p+3
        v4 = _ir.Constant(_V4Q, _ir.Undefined)
        j = builder.mul(p_, _I64(NR))
        pop_bj = builder.load(builder.bitcast(builder.gep(arr_pb.data, [j]), _V4Q.as_pointer()),
                              align=8)
        pop_ai = builder.load(builder.gep(arr_pa.data, [i_]))
        scal = v4
        for r, x in enumerate(s_next):
            scal = builder.insert_element(scal, builder.shl(x, _I64(1)), _I64(r))
        scal = builder.add(builder.sub(builder.shuffle_vector(
            builder.insert_element(v4, pop_ai, _I64(0)), v4, _ir.Constant(_V4I32, [0] * 4)),
            pop_bj), scal)

        # rows 4-7: the four lanes of each of q0..q3 summed, as one vector
        def pairs(x, y):  # [x0+x1, y0+y1, x2+x3, y2+y3]
            return builder.add(builder.shuffle_vector(x, y, _ir.Constant(_V4I32, [0, 4, 2, 6])),
                               builder.shuffle_vector(x, y, _ir.Constant(_V4I32, [1, 5, 3, 7])))
        t0, t1 = pairs(q_next[0], q_next[1]), pairs(q_next[2], q_next[3])
        vect = builder.add(builder.shuffle_vector(t0, t1, _ir.Constant(_V4I32, [0, 1, 4, 5])),
                           builder.shuffle_vector(t0, t1, _ir.Constant(_V4I32, [2, 3, 6, 7])))

        d = builder.shuffle_vector(scal, vect, _ir.Constant(_ir.VectorType(_I32, NR), list(range(NR))))
        n8 = builder.shuffle_vector(builder.insert_element(_ir.Constant(_V8Q, _ir.Undefined),
                                                          n_, _I64(0)),
                                    _ir.Constant(_V8Q, _ir.Undefined),
                                    _ir.Constant(_ir.VectorType(_I32, NR), [0] * NR))
        res = builder.trunc(builder.sub(n8, builder.shl(d, _ir.Constant(_V8Q, [1] * NR))), _V8D)
        width = builder.extract_value(arr_out.shape, 1)
        dst = builder.gep(arr_out.data, [builder.add(builder.mul(row_, width), j)])
        left = builder.sub(width, j)
        with builder.if_else(builder.icmp_signed(">=", left, _I64(NR))) as (full, part):
            with full:
                builder.store(res, builder.bitcast(dst, _V8D.as_pointer()), align=4)
            with part:
                with cgutils.for_range(builder, left) as loop:
                    builder.store(builder.extract_element(res, loop.index),
                                  builder.gep(dst, [loop.index]))
        return context.get_dummy_value()

    arrays = (asp, bs, pop_a, pop_b, out)
    if not (all(isinstance(x, types.Array) and x.layout == "C" for x in arrays)
            and asp.dtype == bs.dtype == types.uint64 and asp.ndim == bs.ndim == 1
            and pop_a.dtype == pop_b.dtype == types.int64 and pop_a.ndim == pop_b.ndim == 1
            and out.dtype == types.int32 and out.ndim == 2
            and all(isinstance(x, types.Integer) for x in (i, p, G, n, row))):
        return None
    return types.none(asp, i, bs, p, G, pop_a, pop_b, n, out, row), codegen


@njit(parallel=True, cache=True)
def _gemm_hybrid(a, bs, pop_b, n, out, row_blocks, panel_splits, panels_per_block):
    """out (M, N) = n - 2*popcount(a[i] ^ b[j]), b packed (``_pack_hybrid_b``), one row x 8
    columns a step.

    Tasks are (one of row_blocks blocks of rows of a, equal give or take a
    row) x (one of panel_splits ranges of panels); a task packs its rows of
    a (``_pack_hybrid_a``) into its own buffer, then sweeps them over blocks
    of panels_per_block panels, so that a block of b stays in L1 while the
    rows pass. ``_hybrid_panel`` does the word loop and the stores.
    """
    M = a.shape[0]
    P, G = bs.shape[0], bs.shape[1]
    fb = bs.reshape(-1)
    n_i = row_blocks
    for task in prange(n_i * panel_splits):
        ti, tj = task // panel_splits, task % panel_splits
        i0, i1 = ti * M // n_i, (ti + 1) * M // n_i
        p0, p1 = tj * P // panel_splits, (tj + 1) * P // panel_splits
        asp = np.empty((i1 - i0, G, _A_GROUP), np.uint64)
        pop_a = np.empty(i1 - i0, np.int64)
        _pack_hybrid_a(a, i0, asp, pop_a)
        fa = asp.reshape(-1)
        for q0 in range(p0, p1, panels_per_block):
            for i in range(i1 - i0):
                for p in range(q0, min(q0 + panels_per_block, p1)):
                    _hybrid_panel(fa, i, fb, p, G, pop_a, pop_b, n, out, i0 + i)


@functools.cache
def _host_features():
    """The host CPU's features as LLVM flattens them (asking LLVM takes about 0.3 ms)."""
    return _llvm.get_host_cpu_features().flatten()


def _target_features():
    """The CPU features Numba compiles for (NUMBA_CPU_FEATURES, else the host's)."""
    from numba.core import config
    if config.CPU_FEATURES is not None:
        return config.CPU_FEATURES
    return _host_features()


VARIANTS = ("hybrid", "scalar", "vector")


def gemm_variant(shape=None):
    """The heuristic GEMM kernel for this CPU (the tuner's fallback, see xnor_gemm):
    $CDL_BINARY_GEMM if set (then nothing is measured), else by the target's features:

    - "vector" where there is a vector popcount (AVX-512 VPOPCNTDQ) or the CPU
      is not x86 (LLVM's own vectorization of the word loop);
    - "hybrid" on x86 with AVX2 and no VPOPCNTDQ (half of each panel on the
      scalar popcnt pipes, half on the AVX2 nibble lookup, in one loop), for
      products large enough for it when their shape (M, N, W) is given
      (``_hybrid_pays``), "scalar" for smaller ones;
    - "scalar" on x86 without AVX2.

    These rules are defaults from one CPU (bench/binary.py has the figures);
    xnor_gemm measures the variants on the machine it runs on. "hybrid" calls
    AVX2 instructions, so forcing it on a CPU without AVX2 is a ValueError.
    """
    feats = _target_features()
    x86 = "+sse2" in feats
    avx2 = "+avx2" in feats
    forced = os.environ.get("CDL_BINARY_GEMM")
    if forced:
        if forced not in VARIANTS:
            raise ValueError(f"CDL_BINARY_GEMM must be one of {VARIANTS}, got {forced!r}")
        if forced == "hybrid" and not avx2:
            raise ValueError("CDL_BINARY_GEMM=hybrid needs a CPU with AVX2; use 'scalar' or "
                             "'vector'")
        return forced
    if not x86 or "+avx512vpopcntdq" in feats:
        return "vector"
    if not avx2 or (shape is not None and not _hybrid_pays(*shape)):
        return "scalar"
    return "hybrid"


# Cache blocking: a task's share of b is about 16 KiB (half of a 32 KiB L1d),
# and rows of a come in blocks of 16 rows, enough to amortize loading that share.
_B_TASK_BYTES = 16 * 1024
_ROWS_PER_TASK = 16
# hybrid: split panels are 1.5x larger and each row of a brings its nibbles along;
# blocks of 16-64 rows x 12-18 KiB of panels measured within 3% of each other (Zen 1)
_HYB_B_BLOCK_BYTES = 12 * 1024
_HYB_ROWS_PER_TASK = 32


def _hybrid_tasks(M, P, threads):
    """(row blocks, panel splits) for ``_gemm_hybrid``: blocks of about _HYB_ROWS_PER_TASK rows,
    their number a multiple of the thread count (the threads get equal shares under the
    static schedule), and the panels split too where there are too few rows for
    2 tasks a thread (each split packs its rows of a again)."""
    blocks = min(M, threads * -(-M // (_HYB_ROWS_PER_TASK * threads)))
    splits = min(P, -(-2 * threads // blocks))
    return blocks, splits


def _hybrid_pays(M, N, W):
    """Whether "hybrid" beats "scalar" for an (M, W) x (N, W) product (a size rule).

    Hybrid packs b into split nibbles on every call (serially) and each task
    its rows of a, and it pads rows to whole groups of 4 words (W = 5 costs
    8), so small products and short rows go to "scalar". Zen 1, 2 threads,
    hybrid vs scalar: 1024x1024 W=64 11.6 vs 16.7 ms, 256x256 W=128 1.6 vs
    2.2, 6272x128 W=18 3.2 vs 3.8, 64x2048 W=32 1.1 vs 1.4, 100x300 W=32 0.35
    vs 0.39; but 128x128 W=18 0.22 vs 0.21, 2048x64 W=9 0.56 vs 0.50 and
    6272x32 W=5 0.61 vs 0.48.
    """
    return W >= 16 and M * N * W >= 1 << 19


def applicable_variants():
    """The variants this CPU runs: "hybrid" with AVX2, "scalar" on x86, "vector" anywhere."""
    feats = _target_features()
    return [v for v in VARIANTS if (v != "hybrid" or "+avx2" in feats)
            and (v != "scalar" or "+sse2" in feats)]


# Products of fewer word pairs (M*N*W) keep gemm_variant's pick: about 0.1 ms or less on
# one core, where timing would cost more than a better pick could save.
_TINY_WORDS = 1 << 18

# The Numba kernels each variant calls from Python (what must be compiled to time it).
_VARIANT_KERNELS = {"scalar": [_gemm_panels], "vector": [_gemm_rows],
                    "hybrid": [_gemm_hybrid, _pack_hybrid_b]}


def _variant(a, b, n, out):
    """The variant of this product: forced, else gemm_variant's pick ($CDL_BINARY_GEMM,
    policy "heuristic", tiny products), else the tuner's (measured on the first call of
    the shape and thread count, into out)."""
    forced = _forced.value
    if forced is not None:
        return forced
    M, W = a.shape
    N = b.shape[0]
    pick = gemm_variant((M, N, W))
    if os.environ.get("CDL_BINARY_GEMM") or tuner.get_policy() == "heuristic":
        return pick
    if M * N * W < _TINY_WORDS:
        return pick
    key = ("xnor_gemm", "uint64", (M, N, W), numba.get_num_threads())
    d = tuner.cached(key)
    if d is None:
        d = tuner.decide(key, applicable_variants(), pick,
                         lambda v: _gemm(v, a, b, n, out),
                         ready=lambda v: tuner.compiled(_VARIANT_KERNELS[v], np.uint64))
    return d.choice


# The variant forced by forced_variant() in this thread (None: measured or gemm_variant).
_forced = tuner.Forced()


def forced_variant(variant):
    """Within the block, xnor_gemm called from this thread uses variant (one of VARIANTS)
    instead of the measured or gemm_variant's pick; None restores that. Blocks nest.

    The variant is a CPU-only choice, so it is no argument of xnor_gemm (whose
    signature the CUDA twin shares): tests and benchmarks force it here.
    """
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"xnor_gemm: variant must be one of {VARIANTS}, got {variant!r}")
    return _forced.holding(variant)


def xnor_gemm(a, b, n, out):
    """out (M, N) int32 = n - 2*popcount(a (M, W) XOR b (N, W)): the +-1 dot products.

    Inputs are trusted (``cdl.binary.binary_matmul`` validates), bar the cheap
    guards below. The kernel is the one measured fastest for this product's
    shape (``gemm_variant``'s pick where nothing is measured, see the module
    docstring), or the one ``forced_variant`` sets.
    """
    M, W = a.shape
    # cheap guards for direct callers: the compiled loops index without bounds checks
    if (b.ndim != 2 or b.shape[1] != W or out.shape != (M, b.shape[0])
            or not (a.dtype == b.dtype == np.uint64) or out.dtype != np.int32
            or not (a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous)
            or not 0 < n <= min(64 * W, 2**31 - 1)):
        raise ValueError(f"xnor_gemm: needs C-contiguous uint64 a (M, W), b (N, W), int32 out "
                         f"(M, N) and 0 < n <= 64*W, n < 2^31; got a {a.dtype}{a.shape}, b "
                         f"{b.dtype}{b.shape}, out {out.dtype}{out.shape}, n {n}")
    return _gemm(_variant(a, b, n, out), a, b, n, out)


def _gemm(variant, a, b, n, out):
    M, W = a.shape
    if variant == "scalar":
        bp = pack_panels(b)
        per_task = max(1, _B_TASK_BYTES // (NR * 8 * W))
        _gemm_panels(a, bp, n, out, _ROWS_PER_TASK, per_task)
    elif variant == "vector":
        per_task = max(4, _B_TASK_BYTES // (8 * W)) // 4 * 4
        _gemm_rows(a, b, n, out, _ROWS_PER_TASK, per_task)
    elif variant == "hybrid":
        if "+avx2" not in _target_features():
            raise ValueError("xnor_gemm: the 'hybrid' variant needs a CPU with AVX2")
        G, P = -(-W // _KG), -(-b.shape[0] // NR)
        bs, pop_b = np.empty((P, G, _B_GROUP), np.uint64), np.empty(P * NR, np.int64)
        _pack_hybrid_b(b, bs, pop_b)
        per_block = max(1, _HYB_B_BLOCK_BYTES // (_B_GROUP * 8 * G))
        _gemm_hybrid(a, bs, pop_b, n, out, *_hybrid_tasks(M, P, numba.get_num_threads()),
                     per_block)
    else:
        raise ValueError(f"xnor_gemm: variant must be one of {VARIANTS}, got {variant!r}")
    return out


# The kernels with CUDA twins (cdl.cuda.binary). pack_panels, gemm_variant and
# forced_variant are CPU tuning and stay out.
__all__ = ["pack_signs", "unpack_signs", "pack_channels", "im2col_bits", "maxpool_bits",
           "threshold_pack", "xnor_gemm"]
