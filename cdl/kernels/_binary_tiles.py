"""The register-tiled binary GEMM kernels: "tiled", "scalar" and "vector" (see ``_binary_gemm``).

Each computes out (M, N) int32 = n - 2*popcount(a[i] XOR b[j]) summed over
the W words of packed rows (bit layout: ``cdl.kernels.binary``). They
differ in what sits in the registers:

- ``_gemm_tiled`` ("tiled"): b in panels of NR = 8 rows, word k of the 8
  rows side by side (``pack_panels``), so one 512-bit vector holds one word
  of 8 columns; a word of a row of a is broadcast to all 8 lanes. A tile of
  _MR = 6 rows of a x _NP = 4 panels (32 columns) keeps 24 vector
  accumulators in registers for the whole word loop: per word, 4 vector
  loads of b and 6 broadcasts feed 24 xor + 24 popcount + 24 add, and the
  lanes are the outputs themselves (no horizontal sums). Written in LLVM IR
  (``_tile``) because the loop holds vectors, which Numba values cannot;
  ``llvm.ctpop.v8i64`` becomes vpopcntq with AVX-512 VPOPCNTDQ, and LLVM's
  own popcount sequence elsewhere.
- ``_gemm_panels`` ("scalar"): the same panels, one row of a x one panel,
  8 scalar popcnt sums a word.
- ``_gemm_rows`` ("vector"): 2 x 4 dot products whose word loop is left to
  LLVM's loop vectorizer (vectors along k, summed horizontally at the end).

Why no cache blocking of k in "tiled": each b vector loaded serves _MR
outputs from registers, so a tile needs 4 x 64 bytes of b from cache per
72 vector operations, which L2 delivers as fast; rows of a are blocked
(``_ROWS_PER_BLOCK``) so that a block stays in L2 while the panel groups
sweep over it.

Why no Harley-Seal (carry-save adders with vpternlogq, Mula et al. 2016):
with a vector popcount a word vector costs xor + popcount + add, and a
carry-save adder takes two ternary-logic ops to remove one vector from the
count, which saves popcount + add: the same number of vector operations,
so it pays only where popcount is slower than the logic ops. It is not on
Zen 5 (a tile loop without its popcounts took 2/3 of the time, in
proportion to the operations left), and a carry register per accumulator
would halve the tile.
"""
import numpy as np
from llvmlite import ir as _ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

_U = np.uint64
NR = 8  # b rows per panel: one 64-byte cache line per word index k


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


def pack_panels(b):
    """b (N, W) -> (ceil(N/NR), W, NR) with word k of row p*NR + r at [p, k, r]; pad rows zero."""
    N, W = b.shape
    out = np.empty((-(-N // NR), W, NR), dtype=np.uint64)
    _pack_panels(b, out)
    return out


@njit(cache=True, nogil=True)
def _pack_panels(b, out):
    """out[p, k, r] = b[p*NR + r, k], zero for rows past N (one pass: a transposing copy)."""
    N, W = b.shape
    for p in range(out.shape[0]):
        for r in range(NR):
            row = p * NR + r
            if row < N:
                for k in range(W):
                    out[p, k, r] = b[row, k]
            else:
                for k in range(W):
                    out[p, k, r] = 0


# -- "tiled": _MR rows of a x _NP panels of b in vector registers -----------------

_MR = 6   # rows of a per tile (broadcast words)
_NP = 4   # panels of b per tile: 24 accumulators + 4 b vectors + a broadcast of 32 registers
_ROWS_PER_BLOCK = 16 * _MR   # rows of a swept over each panel group (96 x W words in L2)

_I32, _I64 = _ir.IntType(32), _ir.IntType(64)
_V8Q, _V8D = _ir.VectorType(_I64, NR), _ir.VectorType(_I32, NR)


def _splat(builder, x):
    """An <NR x i64> vector with x in every lane."""
    undef = _ir.Constant(_V8Q, _ir.Undefined)
    return builder.shuffle_vector(builder.insert_element(undef, x, _I64(0)), undef,
                                  _ir.Constant(_ir.VectorType(_I32, NR), [0] * NR))


def _store_dots(builder, n8, counts, dst, left):
    """Store n - 2*counts (NR int64 lanes) as int32 at dst: all NR of them, or the first
    ``left`` where the output row ends sooner (nothing where left <= 0)."""
    res = builder.trunc(builder.sub(n8, builder.shl(counts, _ir.Constant(_V8Q, [1] * NR))),
                        _V8D)
    with builder.if_else(builder.icmp_signed(">=", left, _I64(NR))) as (full, part):
        with full:
            builder.store(res, builder.bitcast(dst, _V8D.as_pointer()), align=4)
        with part:
            with cgutils.for_range(builder, left) as loop:
                builder.store(builder.extract_element(res, loop.index),
                              builder.gep(dst, [loop.index]))


@intrinsic
def _tile(typingctx, a, i0, i_end, bp, p0, n, out):
    """out[i, 8p:8p+8] = n - 2*popcount(a[i] ^ b[8p + r]) summed over the words, for the
    _MR rows i = i0 .. i0+_MR-1 below i_end and the _NP panels p = p0 .. p0+_NP-1 of
    bp (P, W, NR) (``pack_panels``), clipped to out's width.

    Rows at or past i_end and panels past P are computed on the last valid one
    and not stored, so every tile runs the same loop.
    """
    def codegen(context, builder, sig, args):
        arr_a = context.make_array(sig.args[0])(context, builder, args[0])
        arr_b = context.make_array(sig.args[3])(context, builder, args[3])
        arr_o = context.make_array(sig.args[6])(context, builder, args[6])
        i0_, iend_, p0_, n_ = (context.cast(builder, args[k], sig.args[k], types.int64)
                               for k in (1, 2, 4, 5))
        W = builder.extract_value(arr_a.shape, 1)
        P = builder.extract_value(arr_b.shape, 0)
        N = builder.extract_value(arr_o.shape, 1)
        ctpop = cgutils.get_or_insert_function(builder.module, _ir.FunctionType(_V8Q, [_V8Q]),
                                               "llvm.ctpop.v8i64")

        def clamp(x, end):
            last = builder.sub(end, _I64(1))
            return builder.select(builder.icmp_signed("<", x, last), x, last)

        rows = [builder.add(i0_, _I64(r)) for r in range(_MR)]
        arow = [builder.gep(arr_a.data, [builder.mul(clamp(r, iend_), W)]) for r in rows]
        bpan = [builder.bitcast(builder.gep(arr_b.data, [builder.mul(
            clamp(builder.add(p0_, _I64(q)), P), builder.mul(W, _I64(NR)))]),
            _V8Q.as_pointer()) for q in range(_NP)]

        entry = builder.basic_block
        body = builder.append_basic_block("tile.body")
        done = builder.append_basic_block("tile.done")
        zero = _ir.Constant(_V8Q, None)
        builder.cbranch(builder.icmp_signed(">", W, _I64(0)), body, done)

        # one word k: acc[r][q] += popcount(splat(a[row r, k]) ^ bp[panel q, k, :])
        builder.position_at_end(body)
        k = builder.phi(_I64)
        k.add_incoming(_I64(0), entry)
        acc = [[builder.phi(_V8Q) for _ in range(_NP)] for _ in range(_MR)]
        for v in (v for row in acc for v in row):
            v.add_incoming(zero, entry)
        bv = [builder.load(builder.gep(p, [k]), align=8) for p in bpan]
        nxt = []
        for r in range(_MR):
            x = _splat(builder, builder.load(builder.gep(arow[r], [k])))
            nxt.append([builder.add(acc[r][q], builder.call(ctpop, [builder.xor(x, bv[q])]))
                        for q in range(_NP)])
        k_next = builder.add(k, _I64(1))
        k.add_incoming(k_next, body)
        for r in range(_MR):
            for q in range(_NP):
                acc[r][q].add_incoming(nxt[r][q], body)
        builder.cbranch(builder.icmp_signed("<", k_next, W), body, done)

        # n - 2*sum, as int32, 8 columns a store where the panel fits
        builder.position_at_end(done)
        sums = [[builder.phi(_V8Q) for _ in range(_NP)] for _ in range(_MR)]
        for r in range(_MR):
            for q in range(_NP):
                sums[r][q].add_incoming(zero, entry)
                sums[r][q].add_incoming(nxt[r][q], body)
        n8 = _splat(builder, n_)
        for r in range(_MR):
            with builder.if_then(builder.icmp_signed("<", rows[r], iend_)):
                for q in range(_NP):
                    j = builder.mul(builder.add(p0_, _I64(q)), _I64(NR))
                    dst = builder.gep(arr_o.data, [builder.add(builder.mul(rows[r], N), j)])
                    # left <= 0 for panels past P: nothing stored
                    _store_dots(builder, n8, sums[r][q], dst, builder.sub(N, j))
        return context.get_dummy_value()

    arrays = (a, bp, out)
    if not (all(isinstance(x, types.Array) and x.layout == "C" for x in arrays)
            and a.dtype == bp.dtype == types.uint64 and a.ndim == 2 and bp.ndim == 3
            and out.dtype == types.int32 and out.ndim == 2
            and all(isinstance(x, types.Integer) for x in (i0, i_end, p0, n))):
        return None
    return types.none(a, i0, i_end, bp, p0, n, out), codegen


@njit(cache=True, nogil=True)
def _gemm_tiled(a, bp, n, out, i_lo, i_hi, g_lo, g_hi):
    """out[i_lo:i_hi, 8*_NP*g_lo : 8*_NP*g_hi] (clipped to N) by _MR x _NP tiles (``_tile``).

    Rows come in blocks of _ROWS_PER_BLOCK; each block sweeps the panel
    groups g_lo .. g_hi-1 (_NP panels each) one after the other, so that a
    group stays in cache while the block's tiles pass. Serial and without
    the GIL: ``gemm_tiled`` runs slices of rows (or of groups) in threads.
    """
    for b0 in range(i_lo, i_hi, _ROWS_PER_BLOCK):
        b1 = min(b0 + _ROWS_PER_BLOCK, i_hi)
        for g in range(g_lo, g_hi):
            for i in range(b0, b1, _MR):
                _tile(a, i, b1, bp, g * _NP, n, out)


def tiled_slices(M, P, threads):
    """("rows", tiles) or ("groups", groups): what ``gemm_tiled`` cuts among threads.

    Row tiles while there are at least 2 a thread (or no more panel groups
    than row tiles); otherwise, for products of few rows, the panel groups.
    """
    tiles, groups = -(-M // _MR), -(-P // _NP)
    if tiles >= 2 * threads or tiles >= groups:
        return "rows", tiles
    return "groups", groups


# Products of fewer word pairs (M*N*W) run in the calling thread: about 30 us of work,
# not worth waking another thread for.
_PARALLEL_WORDS = 1 << 19


def gemm_tiled(a, b, n, out, threads):
    """The "tiled" variant: b packed into panels, slices of rows (or panel groups) in threads."""
    from cdl.kernels.parallel import run_slices
    M, W = a.shape
    if M * b.shape[0] * W < _PARALLEL_WORDS:
        threads = 1
    bp = pack_panels(b)
    groups = -(-bp.shape[0] // _NP)
    what, count = tiled_slices(M, bp.shape[0], threads)
    if what == "rows":
        def run(t0, t1):
            _gemm_tiled(a, bp, n, out, t0 * _MR, min(t1 * _MR, M), 0, groups)
    else:
        def run(g0, g1):
            _gemm_tiled(a, bp, n, out, 0, M, g0, g1)
    run_slices(run, count, threads=threads)
    return out


# -- "scalar" and "vector" ------------------------------------------------------

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



# "scalar" and "vector" cache blocking: a task's share of b is about 16 KiB (half of a
# 32 KiB L1d), and rows of a come in blocks of 16 rows, enough to amortize loading it.
_B_TASK_BYTES = 16 * 1024
_ROWS_PER_TASK = 16


def gemm_scalar(a, b, n, out):
    """The "scalar" variant: b packed into panels, then ``_gemm_panels`` (Numba's threads)."""
    per_task = max(1, _B_TASK_BYTES // (NR * 8 * a.shape[1]))
    _gemm_panels(a, pack_panels(b), n, out, _ROWS_PER_TASK, per_task)
    return out


def gemm_vector(a, b, n, out):
    """The "vector" variant: ``_gemm_rows`` on a and b as they are (Numba's threads)."""
    per_task = max(4, _B_TASK_BYTES // (8 * a.shape[1])) // 4 * 4
    _gemm_rows(a, b, n, out, _ROWS_PER_TASK, per_task)
    return out
