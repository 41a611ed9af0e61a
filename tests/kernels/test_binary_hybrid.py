"""The "hybrid" binary GEMM (cdl.kernels._binary_hybrid): task grid, size rule, any tiling."""
import numpy as np
import pytest

from cdl.kernels import _binary_gemm as G
from cdl.kernels import _binary_hybrid as H
from cdl.kernels import binary as K
from cdl.kernels import reference as ref

HAS_AVX2 = "+avx2" in G._target_features()


def test_hybrid_tasks_share_rows_evenly_and_split_panels_for_few_rows():
    assert H._hybrid_tasks(1024, 128, 2) == (32, 1)   # 32-row blocks, 16 a thread
    assert H._hybrid_tasks(600, 75, 2) == (20, 1)     # 30 rows a block, 10 blocks a thread
    assert H._hybrid_tasks(40, 100, 2) == (2, 2)      # too few rows: the panels split too
    assert H._hybrid_tasks(1, 3, 4) == (1, 3)         # no more splits than panels
    assert H._hybrid_tasks(5, 1, 1) == (1, 1)


@pytest.mark.skipif(not HAS_AVX2, reason="the hybrid kernel calls AVX2 instructions")
@pytest.mark.parametrize("blocks, splits, per_block", [(1, 1, 1), (3, 2, 2), (11, 7, 1), (4, 3, 8)])
def test_hybrid_gemm_any_task_grid(blocks, splits, per_block):
    # every (row block, panel range, panel block) tiling covers out exactly once
    M, N, n = 11, 53, 300
    rng = np.random.default_rng(blocks * 100 + splits)
    a, b = ref.pack_bits(rng.standard_normal((M, n))), ref.pack_bits(rng.standard_normal((N, n)))
    W = a.shape[1]
    P, Gr = -(-N // H.NR), -(-W // H._KG)
    bs, pop_b = np.empty((P, Gr, H._B_GROUP), np.uint64), np.empty(P * H.NR, np.int64)
    H._pack_hybrid_b(b, bs, pop_b)
    out = np.full((M, N), -7, np.int32)
    H._gemm_hybrid(a, bs, pop_b, n, out, blocks, splits, per_block)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, n))


@pytest.mark.skipif(not HAS_AVX2, reason="the hybrid kernel calls AVX2 instructions")
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemm_hybrid_any_thread_count(threads):
    rng = np.random.default_rng(threads)
    a, b = ref.pack_bits(rng.standard_normal((37, 900))), ref.pack_bits(rng.standard_normal((29, 900)))
    out = np.full((37, 29), -7, np.int32)
    H.gemm_hybrid(a, b, 900, out, threads)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, 900))


def test_hybrid_size_rule(monkeypatch):
    monkeypatch.delenv("CDL_BINARY_GEMM", raising=False)
    monkeypatch.setattr(G, "_target_features", lambda: "+sse2,+avx2,+popcnt")
    assert K.gemm_variant((1024, 1024, 64)) == "hybrid"
    assert K.gemm_variant((100, 300, 32)) == "hybrid"
    assert K.gemm_variant((128, 128, 18)) == "scalar"    # too small a product
    assert K.gemm_variant((6272, 32, 5)) == "scalar"     # rows too short for groups of 4 words
