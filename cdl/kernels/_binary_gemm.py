"""The XNOR/popcount GEMM ``xnor_gemm`` and the choice of its CPU variant.

out (M, N) int32 = n - 2*popcount(a (M, W) XOR b (N, W)) over packed rows
(bit layout: ``cdl.kernels.binary``): the +-1 dot products, three integer
operations (xor, popcount, add) per pair of 64-bit words. ``xnor_gemm`` and
the names here are re-exported by ``cdl.kernels.binary``.

The variants (kernels in ``_binary_tiles`` and ``_binary_hybrid``)
-------------------------------------------------------------------
- "tiled": 6 rows of a x 32 columns of b in vector registers, lanes along
  the columns (a word of a broadcast against 8 columns' words), no
  horizontal sums: 10 loads per 24 vector xor/popcount/add triples, where
  "vector" needs 6 per 8. Threads: cdl's own (``parallel.run_slices``);
  the other variants run on Numba's (prange).
- "vector": 2 x 4 dot products with the word loop left to LLVM's loop
  vectorizer (vectors along k, summed horizontally per output).
- "hybrid" (x86 with AVX2): half of each 8-column panel on scalar popcnt,
  half on an AVX2 nibble lookup, in one loop, so the integer ALUs and the
  vector pipes work at once.
- "scalar": 1 row x 8 columns of scalar popcnt sums.

Which one runs: the fastest by measurement (``cdl.kernels.tuner``: the first
call of an (M, N, W) product and thread count times the variants whose code
is compiled, on the caller's arrays, cached on disk), with ``gemm_variant``
as the fallback (tiny products, policy "heuristic", other variants not
compiled yet). Tests and benchmarks force one with
``with forced_variant("scalar"): ...``; $CDL_BINARY_GEMM forces one for the
process. ``python bench/binary.py`` times them all and ``--asm`` prints
each inner loop.
"""
import functools
import os

import numba
import numpy as np
from llvmlite import binding as _llvm

from cdl.kernels import tuner
from cdl.kernels._binary_hybrid import _gemm_hybrid, _hybrid_pays, _pack_hybrid_b, gemm_hybrid
from cdl.kernels._binary_tiles import (_gemm_panels, _gemm_rows, _gemm_tiled, _pack_panels,
                                       gemm_scalar, gemm_tiled, gemm_vector)


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


VARIANTS = ("hybrid", "scalar", "tiled", "vector")


def gemm_variant(shape=None):
    """The heuristic GEMM kernel for this CPU (the tuner's fallback, see xnor_gemm):
    $CDL_BINARY_GEMM if set (then nothing is measured), else by the target's features:

    - "tiled" where there is a vector popcount (AVX-512 VPOPCNTDQ): each
      vpopcntq counts 8 word pairs, and the register tile of 6 rows x 32
      columns needs few loads; but "vector" for products of fewer than 6 rows
      or 24 columns when their shape (M, N, W) is given, which would leave
      most of that tile empty;
    - "vector" where the CPU is not x86 (LLVM's own vectorization of the word
      loop, whatever popcount the target has);
    - "hybrid" on x86 with AVX2 and no VPOPCNTDQ (the scalar popcnt pipes and
      the AVX2 nibble lookup at once), for products large enough for it when
      their shape (M, N, W) is given (``_hybrid_pays``), "scalar" for smaller
      ones;
    - "scalar" on x86 without AVX2.

    These rules are defaults; xnor_gemm measures the variants on the machine
    it runs on. "hybrid" calls AVX2 instructions, so forcing it on a CPU
    without AVX2 is a ValueError.
    """
    feats = _target_features()
    x86 = "+sse2" in feats
    avx2 = "+avx2" in feats
    forced = os.environ.get("CDL_BINARY_GEMM")
    if forced:
        if forced not in VARIANTS:
            raise ValueError(f"CDL_BINARY_GEMM must be one of {VARIANTS}, got {forced!r}")
        if forced == "hybrid" and not avx2:
            raise ValueError("CDL_BINARY_GEMM=hybrid needs a CPU with AVX2; use 'scalar', "
                             "'tiled' or 'vector'")
        return forced
    if "+avx512vpopcntdq" in feats:
        return "vector" if shape is not None and (shape[0] < 6 or shape[1] < 24) else "tiled"
    if not x86:
        return "vector"
    if not avx2 or (shape is not None and not _hybrid_pays(*shape)):
        return "scalar"
    return "hybrid"


def applicable_variants():
    """The variants this CPU runs: "hybrid" with AVX2, "scalar" on x86, "tiled" and "vector"
    anywhere."""
    feats = _target_features()
    return [v for v in VARIANTS if (v != "hybrid" or "+avx2" in feats)
            and (v != "scalar" or "+sse2" in feats)]


# Products of fewer word pairs (M*N*W) keep gemm_variant's pick: about 0.1 ms or less on
# one core, where timing would cost more than a better pick could save.
_TINY_WORDS = 1 << 18

# The Numba kernels each variant calls from Python (what must be compiled to time it).
_VARIANT_KERNELS = {"scalar": [_gemm_panels, _pack_panels], "vector": [_gemm_rows],
                    "tiled": [_gemm_tiled, _pack_panels], "hybrid": [_gemm_hybrid, _pack_hybrid_b]}


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
    if out.size == 0:  # nothing to compute (and no task grid to cut)
        return out
    return _gemm(_variant(a, b, n, out), a, b, n, out)


def _gemm(variant, a, b, n, out):
    if variant == "tiled":
        return gemm_tiled(a, b, n, out, numba.get_num_threads())
    if variant == "scalar":
        return gemm_scalar(a, b, n, out)
    if variant == "vector":
        return gemm_vector(a, b, n, out)
    if variant == "hybrid":
        if "+avx2" not in _target_features():
            raise ValueError("xnor_gemm: the 'hybrid' variant needs a CPU with AVX2")
        return gemm_hybrid(a, b, n, out, numba.get_num_threads())
    raise ValueError(f"xnor_gemm: variant must be one of {VARIANTS}, got {variant!r}")
