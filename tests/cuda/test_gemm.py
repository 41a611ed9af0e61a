"""The device GEMM (cdl.cuda.gemm) against NumPy: transposes, alpha and beta, ragged tiles."""
import numpy as np
import pytest

from ..conftest import host, on, simulated
from .test_dense import compile_for_gpu


def _gemm():
    from cdl.cuda import gemm
    return gemm


def _operands(rng, M, N, K, trans_a, trans_b, dtype):
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)
    return a, b, want


# On a GPU, cuBLAS (when CuPy or nvmath-python imports) and the numba kernel both; under the
# simulator the two are the same numba kernel, tested once.
IMPLEMENTATIONS = ["gemm"] if simulated() else ["gemm", "_numba_gemm"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_matches_numpy(impl, trans_a, trans_b, dtype):
    """M, N, K not multiples of the 16x16 tiles; alpha and beta applied to op(a) op(b) and c."""
    rng = np.random.default_rng(0)
    M, N, K = 5, 18, 17
    a, b, want = _operands(rng, M, N, K, trans_a, trans_b, dtype)
    c0 = rng.standard_normal((M, N)).astype(dtype)
    ag, bg, cg = on("cuda", a, b, c0)
    assert getattr(_gemm(), impl)(ag, bg, cg, trans_a, trans_b, 0.5, -2.0) is cg
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(host(cg), 0.5 * want - 2.0 * c0, rtol=tol, atol=tol)


def test_beta_zero_ignores_c():
    """beta = 0 never reads c: the garbage (here NaN) of an empty allocation does not leak."""
    rng = np.random.default_rng(1)
    a, b, want = _operands(rng, 3, 4, 20, False, True, np.float64)
    cg = on("cuda", np.full((3, 4), np.nan))
    _gemm().gemm(*on("cuda", a, b), cg, trans_b=True)
    np.testing.assert_allclose(host(cg), want, rtol=1e-12, atol=1e-12)


def test_empty_reduction_scales_c():
    """K = 0: op(a) op(b) is zero, so c = beta * c."""
    a, b, c0 = np.empty((2, 0)), np.empty((0, 3)), np.arange(6.0).reshape(2, 3)
    cg = on("cuda", c0)
    _gemm().gemm(*on("cuda", a, b), cg, beta=3.0)
    np.testing.assert_array_equal(host(cg), 3 * c0)


def test_numba_gemm_under_the_simulator():
    if simulated():
        assert _gemm().backend() == "numba"
    else:
        assert _gemm().backend() in ("cupy", "nvmath", "numba")


@pytest.mark.slow
def test_kernel_compiles_for_a_gpu():
    """Both dtypes, transposed (non-contiguous) and mixed-dtype operands."""
    compile_for_gpu("""
        import numpy as np
        from cdl.cuda import gemm
        for dt in (T.float32, T.float64):
            k = gemm._gemm_k_for(np.dtype(str(dt)))
            check(k, arr(dt, 2), arr(dt, 2), arr(dt, 2), b1, b1, dt, dt)
            check(k, T.Array(dt, 2, "A"), arr(T.float32, 2), arr(dt, 2), b1, b1, dt, dt)
    """)
