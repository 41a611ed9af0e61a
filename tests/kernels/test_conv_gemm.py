"""cdl.kernels.conv_gemm: the "gemm" and "pointwise" slices (through conv2d_forward/backward
against the reference), chunking, and the reorders between GEMM layouts and NCHW."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl.kernels import conv as kconv
from cdl.kernels import conv_gemm as G

from .test_conv import _algorithms, _run


@st.composite
def pointwise_cases(draw):
    N, C, F = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    return (N, C, H, W), (F, C, 1, 1), (1, 1), (0, 0)



@settings(max_examples=30, deadline=None)
@given(pointwise_cases(), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_pointwise_and_gemm_agree_with_reference(case, dtype, bias):
    """Both algorithms on the shapes where the heuristic picks "pointwise"."""
    assert kconv.choose_algorithm(*case) == "pointwise"
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for algo in _algorithms(case):
        for got, want in _run(case, dtype, algo=algo, bias=bias):
            assert got.dtype == dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)



@pytest.mark.parametrize("columns_min_f", [1, 1 << 30])  # the two forward GEMM orientations
@pytest.mark.parametrize("chunk_bytes", [1, 300, 1 << 20])
@pytest.mark.parametrize("case", [
    ((7, 3, 6, 5), (4, 3, 3, 3), (1, 1), (1, 1)),
    ((5, 2, 9, 8), (3, 2, 3, 2), (2, 3), (1, 0)),
    ((6, 4, 4, 4), (5, 4, 1, 1), (1, 1), (0, 0)),
])
def test_chunks_and_slices(monkeypatch, chunk_bytes, columns_min_f, case):
    """One sample per chunk, a few, or the whole slice, y as GEMM rows or columns: same numbers."""
    monkeypatch.setattr(G, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(G, "FORWARD_COLUMNS_MIN_F", columns_min_f)
    for algo in _algorithms(case):
        for got, want in _run(case, np.float64, algo=algo):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("a, z, sample_bytes, budget, nb", [
    (0, 7, 10, 35, 3), (2, 9, 10, 5, 1), (0, 4, 10, 10 ** 6, 4), (3, 3, 10, 100, 1),
    (0, 5, 0, 8, 5),
])
def test_sample_chunks_cover_the_slice_within_the_budget(a, z, sample_bytes, budget, nb):
    got_nb, chunks = G.sample_chunks(a, z, sample_bytes, budget)
    assert got_nb == nb
    covered = [n for n0, n1 in chunks for n in range(n0, n1)]
    assert covered == list(range(a, z))
    assert all(0 < n1 - n0 <= nb for n0, n1 in chunks)


def test_reorders_between_gemm_layouts_and_nchw():
    rng = np.random.default_rng(0)
    N, F, P, n0, nb = 5, 3, 4, 1, 2
    b = rng.standard_normal(F)
    rows = rng.standard_normal((nb * P, F))  # GEMM rows (nb*P, F)
    y = np.zeros((N, F, P))
    G.rows_to_nchw(rows, b, n0, y)
    want = rows.reshape(nb, P, F).transpose(0, 2, 1) + b[:, None]
    np.testing.assert_array_equal(y[n0:n0 + nb], want)
    assert not y[:n0].any() and not y[n0 + nb:].any()
    y[...] = 0
    G.cols_to_nchw(np.ascontiguousarray(rows.T), b, n0, y)  # GEMM columns (F, nb*P)
    np.testing.assert_array_equal(y[n0:n0 + nb], want)
    dy = np.empty((F, nb * P))
    G.nchw_to_cols(y, n0, n0 + nb, dy)
    np.testing.assert_array_equal(dy, (want.transpose(1, 0, 2)).reshape(F, nb * P))
