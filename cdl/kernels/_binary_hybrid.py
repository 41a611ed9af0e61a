"""The "hybrid" binary GEMM (x86 with AVX2, no vector popcount; see ``_binary_gemm``).

AVX2 has no popcount; LLVM's vector form is a nibble lookup (vpand, vpsrlw,
2 x vpshufb, vpaddb, vpsadbw per 4 words) that alone is slower than the
scalar ``popcnt`` pipes, and the scalar pipes alone are bound by three ALU
ops per word on 4 ALUs. So each panel of 8 rows of b is split: rows 0-3
through scalar popcnt (as popcount(~a & b) with BMI1's three-operand andn,
corrected by the row popcounts), rows 4-7 through the lookup, in one loop
over groups of 4 words, so the integer ALUs and the vector pipes work at
once. That loop is written in LLVM IR (``_hybrid_panel``): Numba values
cannot hold vectors.
"""
import numpy as np
from llvmlite import ir as _ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from cdl.kernels._binary_tiles import NR, _popcount, _splat, _store_dots

_U = np.uint64

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
        width = builder.extract_value(arr_out.shape, 1)
        dst = builder.gep(arr_out.data, [builder.add(builder.mul(row_, width), j)])
        _store_dots(builder, _splat(builder, n_), d, dst, builder.sub(width, j))
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



# Split panels are 1.5x larger than plain ones and each row of a brings its nibbles
# along, so blocks are smaller than the scalar kernel's; blocks of 16-64 rows x
# 12-18 KiB of panels measured within 3% of each other (Zen 1, bench/binary.py).
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
    8), so small products (under 2^19 word pairs) and short rows (under 16
    words) go to "scalar": the crossover measured on Zen 1 with 2 threads.
    """
    return W >= 16 and M * N * W >= 1 << 19


def gemm_hybrid(a, b, n, out, threads):
    """The "hybrid" variant: b packed into split panels (serially), then ``_gemm_hybrid``."""
    M, W = a.shape
    G, P = -(-W // _KG), -(-b.shape[0] // NR)
    bs, pop_b = np.empty((P, G, _B_GROUP), np.uint64), np.empty(P * NR, np.int64)
    _pack_hybrid_b(b, bs, pop_b)
    per_block = max(1, _HYB_B_BLOCK_BYTES // (_B_GROUP * 8 * G))
    _gemm_hybrid(a, bs, pop_b, n, out, *_hybrid_tasks(M, P, threads), per_block)
    return out
