"""The register-tiled binary GEMM kernels (cdl.kernels._binary_tiles), called directly."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl.kernels import _binary_tiles as T
from cdl.kernels import reference as ref


def panels_oracle(b):
    N, W = b.shape
    P = -(-N // T.NR)
    padded = np.zeros((P * T.NR, W), np.uint64)
    padded[:N] = b
    return padded.reshape(P, T.NR, W).transpose(0, 2, 1)


@pytest.mark.parametrize("N, W", [(1, 1), (8, 3), (13, 5), (64, 64), (3, 0)])
def test_pack_panels_transposes_blocks_of_8_rows(N, W):
    b = np.random.default_rng(N).integers(0, 2**64, (N, W), dtype=np.uint64)
    p = T.pack_panels(b)
    assert p.dtype == np.uint64 and p.flags.c_contiguous
    np.testing.assert_array_equal(p, panels_oracle(b))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2 * T._ROWS_PER_BLOCK + 7), st.integers(1, 3 * T.NR * T._NP + 5),
       st.integers(1, 200), st.integers(0, 2**31))
def test_gemm_tiled_whole_product(M, N, n, seed):
    # rows past a 96-row block and columns past a 32-column group, in every remainder
    rng = np.random.default_rng(seed)
    a, b = ref.pack_bits(rng.standard_normal((M, n))), ref.pack_bits(rng.standard_normal((N, n)))
    out = np.full((M, N), -7, np.int32)
    T._gemm_tiled(a, T.pack_panels(b), n, out, 0, M, 0, -(-N // (T.NR * T._NP)))
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, n))


def test_gemm_tiled_writes_only_its_rows_and_groups():
    # a slice (rows 7..20, panel group 1) leaves everything else as it was
    rng = np.random.default_rng(5)
    M, N, n = 30, 80, 130
    a, b = ref.pack_bits(rng.standard_normal((M, n))), ref.pack_bits(rng.standard_normal((N, n)))
    out = np.full((M, N), -7, np.int32)
    T._gemm_tiled(a, T.pack_panels(b), n, out, 7, 20, 1, 2)
    want = np.full((M, N), -7, np.int32)
    cols = slice(T.NR * T._NP, 2 * T.NR * T._NP)
    want[7:20, cols] = ref.binary_matmul(a, b, n)[7:20, cols]
    np.testing.assert_array_equal(out, want)


def test_gemm_tiled_empty_k_is_the_empty_sum():
    # no words: every popcount sum is 0, so out = n - 0 (n = 0 for an empty row)
    a, b = np.zeros((7, 0), np.uint64), np.zeros((9, 0), np.uint64)
    out = np.full((7, 9), -7, np.int32)
    T._gemm_tiled(a, T.pack_panels(b), 0, out, 0, 7, 0, 1)
    assert (out == 0).all()


@pytest.mark.parametrize("M, P, threads, want", [
    (1024, 128, 2, ("rows", 171)),   # many row tiles: rows are cut
    (12, 256, 2, ("groups", 64)),    # 2 row tiles, 64 panel groups: the groups are cut
    (12, 4, 2, ("rows", 2)),         # as few groups as tiles: rows
    (1, 1, 4, ("rows", 1)),
])
def test_tiled_slices(M, P, threads, want):
    assert T.tiled_slices(M, P, threads) == want


@pytest.mark.parametrize("M, N", [(1, 300), (2, 33), (50, 7), (13, 256)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemm_tiled_any_split(monkeypatch, M, N, threads):
    monkeypatch.setattr(T, "_PARALLEL_WORDS", 0)  # these small products in threads all the same
    calls = []
    real = T._gemm_tiled
    monkeypatch.setattr(T, "_gemm_tiled", lambda *args: calls.append(args[4:]) or real(*args))
    rng = np.random.default_rng(M + N)
    n = 333
    a, b = ref.pack_bits(rng.standard_normal((M, n))), ref.pack_bits(rng.standard_normal((N, n)))
    out = np.full((M, N), -7, np.int32)
    T.gemm_tiled(a, b, n, out, threads)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, n))
    what, count = T.tiled_slices(M, -(-N // T.NR), threads)
    assert len(calls) == min(threads, count)  # one slice a thread


def test_gemm_tiled_small_products_stay_in_the_calling_thread(monkeypatch):
    calls = []
    monkeypatch.setattr(T, "_gemm_tiled", lambda *args: calls.append(args[4:]))
    a, b = np.zeros((100, 4), np.uint64), np.zeros((100, 4), np.uint64)
    T.gemm_tiled(a, b, 256, np.empty((100, 100), np.int32), 2)  # 40000 word pairs
    assert calls == [(0, 100, 0, 4)]
    a, b = np.zeros((1000, 32), np.uint64), np.zeros((100, 32), np.uint64)
    T.gemm_tiled(a, b, 2048, np.empty((1000, 100), np.int32), 2)
    assert sorted(calls[1:]) == [(0, 498, 0, 4), (498, 1000, 0, 4)]  # 167 row tiles: 83, 84


@pytest.mark.parametrize("run", [T.gemm_scalar, T.gemm_vector])
def test_scalar_and_vector_drivers(run):
    rng = np.random.default_rng(9)
    a, b = ref.pack_bits(rng.standard_normal((21, 700))), ref.pack_bits(rng.standard_normal((19, 700)))
    out = np.full((21, 19), -7, np.int32)
    run(a, b, 700, out)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, 700))
