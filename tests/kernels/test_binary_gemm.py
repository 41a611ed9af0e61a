"""xnor_gemm and the choice of its CPU variant (cdl.kernels._binary_gemm) against the oracle."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl.kernels import _binary_gemm as G
from cdl.kernels import binary as K
from cdl.kernels import reference as ref
from cdl.kernels import tuner


def gemm(a, b, n, out, variant):
    """xnor_gemm with its CPU variant forced."""
    with K.forced_variant(variant):
        return K.xnor_gemm(a, b, n, out)


def random_packed(rng, rows, n):
    """Packed rows of n random signs (zero tails), as pack_bits makes them."""
    return ref.pack_bits(rng.standard_normal((rows, n)))


HAS_AVX2 = "+avx2" in G._target_features()
# every GEMM kernel this CPU can run ("hybrid" calls AVX2 instructions)
RUNNABLE = K.applicable_variants()


def test_the_variants_are_reexported_by_the_kernel_module():
    assert K.xnor_gemm is G.xnor_gemm and K.VARIANTS == G.VARIANTS
    assert set(RUNNABLE) >= {"tiled", "vector"}
    assert "xnor_gemm" in K.__all__ and "gemm_variant" not in K.__all__


def test_the_tuner_knows_each_variants_kernels():
    # a variant is timed only once these are compiled (tuner.compiled): none may be missing
    assert set(G._VARIANT_KERNELS) == set(K.VARIANTS)
    from cdl.kernels import _binary_tiles as T
    assert T._pack_panels in G._VARIANT_KERNELS["tiled"]
    assert T._pack_panels in G._VARIANT_KERNELS["scalar"]


@pytest.mark.parametrize("variant", RUNNABLE)
@pytest.mark.parametrize("M, N, n", [(1, 1, 1), (1, 9, 64), (17, 8, 65), (16, 15, 127),
                                     (33, 70, 300), (3, 130, 4096), (40, 17, 5000),
                                     (6, 32, 64), (7, 33, 129), (97, 5, 640), (200, 300, 70)])
def test_every_gemm_variant_agrees_with_reference(variant, M, N, n):
    # M, N around the tiled kernel's 6 x 32 tile and 96-row blocks; n off word boundaries
    rng = np.random.default_rng(M * 1000 + N)
    a, b = random_packed(rng, M, n), random_packed(rng, N, n)
    out = np.full((M, N), -7, dtype=np.int32)
    gemm(a, b, n, out, variant)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, n))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(RUNNABLE), st.integers(1, 21), st.integers(1, 41),
       st.integers(1, 64 * 70), st.integers(0, 2**31))
def test_gemm_variants_match_the_float_dot_product(variant, M, N, n, seed):
    # n up to 70 words: the hybrid kernel's byte counters restart every 31 words
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((M, n)), rng.standard_normal((N, n))
    out = np.full((M, N), -7, dtype=np.int32)
    gemm(ref.pack_bits(A), ref.pack_bits(B), n, out, variant)
    np.testing.assert_array_equal(out, np.where(A >= 0, 1, -1) @ np.where(B >= 0, 1, -1).T)


@pytest.mark.parametrize("variant", RUNNABLE)
@pytest.mark.parametrize("words", [1, 31, 32, 64, 93])
def test_gemm_variants_count_every_bit_differing(variant, words):
    # every byte of every word differs: the most any byte counter of the hybrid kernel holds
    n = 64 * words
    ones = np.full((3, words), ~np.uint64(0))
    zeros = np.zeros((9, words), np.uint64)
    out = np.empty((3, 9), np.int32)
    gemm(ones, zeros, n, out, variant)
    assert (out == -n).all()
    out = np.empty((3, 3), np.int32)
    gemm(ones, ones, n, out, variant)
    assert (out == n).all()


@pytest.mark.parametrize("variant", RUNNABLE)
def test_gemm_variants_take_empty_products(variant):
    a, b = np.zeros((0, 2), np.uint64), np.zeros((5, 2), np.uint64)
    assert gemm(a, b, 100, np.empty((0, 5), np.int32), variant).shape == (0, 5)
    assert gemm(b, a, 100, np.empty((5, 0), np.int32), variant).shape == (5, 0)


@pytest.mark.parametrize("variant", RUNNABLE)
def test_every_variant_through_the_policy_and_the_environment(monkeypatch, variant):
    # the ways a variant is picked outside forced_variant: CDL_BINARY_GEMM under either policy
    rng = np.random.default_rng(11)
    a, b, n = random_packed(rng, 64, 1000), random_packed(rng, 70, 1000), 1000
    monkeypatch.setenv("CDL_BINARY_GEMM", variant)
    for policy in tuner.POLICIES:
        before = tuner.set_policy(policy)
        try:
            assert K.gemm_variant((64, 70, 16)) == variant
            out = np.full((64, 70), -7, np.int32)
            K.xnor_gemm(a, b, n, out)
        finally:
            tuner.set_policy(before)
        np.testing.assert_array_equal(out, ref.binary_matmul(a, b, n))


def test_gemm_variant_follows_the_cpu(monkeypatch):
    monkeypatch.delenv("CDL_BINARY_GEMM", raising=False)
    monkeypatch.setattr(G, "_target_features", lambda: "+sse2,+avx2,+popcnt,-avx512vpopcntdq")
    assert K.gemm_variant() == "hybrid"
    monkeypatch.setattr(G, "_target_features", lambda: "+sse2,-avx2,+popcnt")
    assert K.gemm_variant() == "scalar"
    monkeypatch.setattr(G, "_target_features", lambda: "+sse2,+avx2,+avx512f,+avx512vpopcntdq")
    assert K.gemm_variant() == "tiled"
    assert K.gemm_variant((6, 24, 1)) == "tiled"
    assert K.gemm_variant((5, 1000, 32)) == "vector"   # most of the 6-row tile empty
    assert K.gemm_variant((1000, 23, 32)) == "vector"  # most of the 32-column tile empty
    monkeypatch.setattr(G, "_target_features", lambda: "+neon,+v8a")
    assert K.gemm_variant() == "vector"
    assert K.applicable_variants() == ["tiled", "vector"]
    monkeypatch.setenv("CDL_BINARY_GEMM", "vector")
    monkeypatch.setattr(G, "_target_features", lambda: "+sse2,+avx2,+popcnt")
    assert K.gemm_variant() == "vector"
    assert K.applicable_variants() == ["hybrid", "scalar", "tiled", "vector"]
    monkeypatch.setenv("CDL_BINARY_GEMM", "scalar")
    assert K.gemm_variant() == "scalar"
    monkeypatch.setenv("CDL_BINARY_GEMM", "fast")
    with pytest.raises(ValueError, match="CDL_BINARY_GEMM"):
        K.gemm_variant()
    with pytest.raises(ValueError, match="variant"):
        gemm(np.zeros((1, 1), np.uint64), np.zeros((1, 1), np.uint64), 64,
             np.zeros((1, 1), np.int32), "avx9000")
    with pytest.raises(ValueError, match="variant must be one of"):
        K.forced_variant("avx9000")


def test_hybrid_gemm_refuses_cpus_without_avx2(monkeypatch):
    monkeypatch.setattr(G, "_target_features", lambda: "+sse2,-avx2,+popcnt")
    monkeypatch.setenv("CDL_BINARY_GEMM", "hybrid")
    with pytest.raises(ValueError, match="AVX2"):
        K.gemm_variant()
    with pytest.raises(ValueError, match="AVX2"):
        gemm(np.zeros((1, 1), np.uint64), np.zeros((1, 1), np.uint64), 64,
             np.zeros((1, 1), np.int32), "hybrid")


def test_xnor_gemm_guards_direct_callers():
    a, b = np.zeros((3, 2), np.uint64), np.zeros((4, 2), np.uint64)
    for bad in [(a, b, 100, np.zeros((4, 3), np.int32)), (a, b, 200, np.zeros((3, 4), np.int32)),
                (a, b[:, :1].copy(), 64, np.zeros((3, 4), np.int32)),
                (a, b, 100, np.zeros((3, 4), np.int64)), (a, b, 0, np.zeros((3, 4), np.int32)),
                (a, np.zeros((8, 4), np.uint64)[:, ::2], 100, np.zeros((3, 4), np.int32))]:
        with pytest.raises(ValueError, match="xnor_gemm"):
            K.xnor_gemm(*bad)
