"""Conv kernels against the direct NumPy reference on random geometries, every algorithm."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl import kernels as K
from cdl._checks import conv_output_hw
from cdl.kernels import conv as kconv
from cdl.kernels import reference as ref

from .. import _fuzz


def conv_cases():
    """Geometries with kernels up to 5, planes up to 10, 5 -> 7 channels."""
    return _fuzz.conv_cases(max_k=5, max_hw=10, max_c=5, max_f=7)


def _forward(x, W, b, stride, pad, algo=None):
    """conv2d_forward into a fresh y, with algo forced (None: the heuristic's pick)."""
    y = np.empty((x.shape[0], W.shape[0], *conv_output_hw("test", x.shape[2:], W.shape[2:],
                                                          stride, pad)), dtype=x.dtype)
    with kconv.forced_algorithm(algo):
        assert K.conv2d_forward(x, W, b, stride, pad, y) is y
    return y


def _backward(dout, x, W, stride, pad, algo=None, bias=True, with_dx=True):
    """conv2d_backward into fresh outputs (dx None without with_dx, db None without bias)."""
    out = (np.empty_like(x) if with_dx else None, np.empty_like(W),
           np.empty(W.shape[0], dtype=x.dtype) if bias else None)
    with kconv.forced_algorithm(algo):
        got = K.conv2d_backward(dout, x, W, stride, pad, *out)
    assert all(g is o for g, o in zip(got, out))
    return got


def _run(case, dtype, seed=0, algo=None, bias=True):
    xs, ws, stride, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    W = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    y = _forward(x, W, b, stride, pad, algo)
    want = ref.conv2d_forward(x, W, b, *stride, *pad)
    dout = rng.standard_normal(want.shape).astype(dtype)
    dx, dW, db = _backward(dout, x, W, stride, pad, algo, bias)
    rdx, rdW, rdb = ref.conv2d_backward(dout, x, W, *stride, *pad)
    if not bias:
        assert db is None
        return (y, want), (dx, rdx), (dW, rdW)
    return (y, want), (dx, rdx), (dW, rdW), (db, rdb)


def _algorithms(case):
    """Every algorithm that applies to the geometry (kconv.applicable)."""
    algos = kconv.applicable(*case)
    assert {"gemm", "direct"} <= set(algos) and kconv.choose_algorithm(*case) in algos
    return algos


@settings(max_examples=50, deadline=None)
@given(conv_cases(), st.sampled_from([np.float32, np.float64]))
def test_conv_matches_reference(case, dtype):
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for got, want in _run(case, dtype):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


@settings(max_examples=40, deadline=None)
@given(conv_cases(), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_every_algorithm_matches_reference(case, dtype, bias):
    """Each algorithm forced, whatever the heuristic would pick: any kernel, stride, padding,
    odd and even channel counts (direct pairs channels), batch 1."""
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for algo in _algorithms(case):
        for got, want in _run(case, dtype, algo=algo, bias=bias):
            assert got.dtype == dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


@st.composite
def winograd_cases(draw):
    """3x3, stride 1, padding 0 to 2, odd and even output sizes down to 1x1."""
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, 3 - 2 * ph), 9))
    W = draw(st.integers(max(1, 3 - 2 * pw), 9))
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return (N, C, H, W), (F, C, 3, 3), (1, 1), (ph, pw)


@settings(max_examples=40, deadline=None)
@given(winograd_cases(), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_winograd_matches_reference(case, dtype, bias):
    assert "winograd" in kconv.applicable(*case)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for got, want in _run(case, dtype, algo="winograd", bias=bias):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("chunk_bytes", [1, 5000, 1 << 20])
def test_winograd_chunks(monkeypatch, chunk_bytes):
    """One sample per chunk, a few, or the whole slice: the same numbers."""
    monkeypatch.setattr(kconv, "_WINOGRAD_CHUNK_BYTES", chunk_bytes)
    case = ((7, 4, 6, 5), (3, 4, 3, 3), (1, 1), (1, 2))
    for got, want in _run(case, np.float64, algo="winograd"):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [
    ((3, 2, 6, 5), (5, 2, 3, 3), (1, 1), (1, 1)),
    ((2, 5, 7, 7), (3, 5, 3, 2), (2, 1), (1, 0)),
    ((2, 4, 4, 4), (6, 4, 1, 1), (1, 1), (0, 0)),
])
def test_backward_without_dx(case):
    """dx None: not computed, dW and db the same, for every algorithm."""
    xs, ws, stride, pad = case
    rng = np.random.default_rng(3)
    x, W = rng.standard_normal(xs), rng.standard_normal(ws)
    dout = rng.standard_normal(_forward(x, W, None, stride, pad).shape)
    for algo in _algorithms(case):
        dx, dW, db = _backward(dout, x, W, stride, pad, algo)
        none, dW2, db2 = _backward(dout, x, W, stride, pad, algo, with_dx=False)
        assert none is None and dx is not None
        np.testing.assert_allclose(dW2, dW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(db2, db, rtol=1e-12, atol=1e-12)


def test_unknown_or_inapplicable_algorithm():
    x, W = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="unknown algorithm"):
        with kconv.forced_algorithm("fft"):
            pass
    with pytest.raises(ValueError, match="'pointwise' needs a 1x1"):
        _forward(x, W, None, (1, 1), (0, 0), "pointwise")
    with pytest.raises(ValueError, match="'winograd' needs a 3x3 kernel and stride 1"):
        _forward(x, W, None, (2, 2), (0, 0), "winograd")
    with pytest.raises(ValueError, match="'winograd' needs a 3x3 kernel and stride 1"):
        _backward(np.zeros((1, 1, 1, 1)), x, W, (2, 2), (0, 0), "winograd")


def test_forced_algorithm_is_scoped_and_per_thread(monkeypatch):
    """The forced algorithm holds inside the block, in the calling thread only, and nests."""
    import threading
    picks = []
    monkeypatch.setattr(kconv, "choose_algorithm", lambda *a: picks.append("heuristic") or "gemm")
    x, W, y = np.ones((1, 2, 5, 5)), np.ones((2, 2, 3, 3)), np.empty((1, 2, 5, 5))

    def conv():
        K.conv2d_forward(x, W, None, (1, 1), (1, 1), y)
    seen = []
    real = kconv._algorithm
    monkeypatch.setattr(kconv, "_algorithm", lambda *a: seen.append(real(*a)) or seen[-1])
    with kconv.forced_algorithm("direct"):
        conv()
        with kconv.forced_algorithm("winograd"):
            conv()
        other = threading.Thread(target=conv)
        other.start()
        other.join()
        conv()
    conv()
    assert seen == ["direct", "winograd", "gemm", "direct", "gemm"]
    assert picks == ["heuristic", "heuristic"]


def test_heuristic():
    assert kconv.choose_algorithm((8, 64, 8, 8), (32, 64, 1, 1), (1, 1), (0, 0)) == "pointwise"
    assert kconv.choose_algorithm((8, 64, 8, 8), (32, 64, 1, 1), (2, 2), (0, 0)) == "gemm"
    assert kconv.choose_algorithm((8, 64, 8, 8), (32, 64, 3, 3), (1, 1), (1, 1)) == "winograd"
    assert kconv.choose_algorithm((8, 32, 8, 8), (32, 32, 3, 3), (1, 1), (2, 2)) == "winograd"
    assert kconv.choose_algorithm((8, 64, 8, 8), (32, 64, 3, 3), (2, 2), (1, 1)) == "gemm"
    assert kconv.choose_algorithm((8, 64, 8, 8), (32, 64, 5, 5), (1, 1), (2, 2)) == "gemm"
    assert kconv.choose_algorithm((8, 16, 14, 14), (32, 16, 3, 3), (1, 1), (1, 1)) == "gemm"
    assert kconv.choose_algorithm((8, 4, 8, 8), (32, 4, 3, 3), (1, 1), (1, 1)) == "gemm"
    for C in (1, 2, 3):  # first layers: gray or RGB
        assert kconv.choose_algorithm((8, C, 28, 28), (16, C, 3, 3), (1, 1), (1, 1)) == "direct"
        assert kconv.choose_algorithm((8, C, 28, 28), (16, C, 5, 5), (2, 2), (2, 2)) == "direct"
        assert kconv.choose_algorithm((8, C, 12, 12), (16, C, 3, 3), (1, 1), (1, 1)) == "gemm"
    assert kconv.choose_algorithm((8, 1, 28, 28), (16, 1, 1, 1), (1, 1), (0, 0)) == "pointwise"
    assert kconv.choose_algorithm((8, 16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1)) == "direct"
    assert kconv.choose_algorithm((8, 16, 28, 28), (16, 16, 3, 3), (1, 1), (0, 0)) == "gemm"  # 26
    assert kconv.choose_algorithm((8, 16, 56, 56), (16, 16, 3, 3), (2, 2), (1, 1)) == "direct"  # 28


@pytest.mark.parametrize("case", [
    ((1, 1, 6, 6), (4, 1, 1, 1), (1, 1), (0, 0)),   # 1x1 kernel, batch 1
    ((2, 3, 7, 7), (2, 3, 2, 2), (3, 3), (0, 0)),   # stride > kernel
    ((2, 2, 5, 5), (3, 2, 3, 3), (1, 1), (1, 1)),   # same padding
    ((1, 1, 3, 3), (2, 1, 5, 5), (1, 1), (1, 1)),   # kernel bigger than the image
    ((3, 5, 9, 7), (6, 5, 3, 2), (2, 1), (1, 0)),   # odd, rectangular
    ((2, 16, 4, 4), (8, 16, 1, 1), (1, 1), (0, 0)),  # pointwise
    ((2, 1, 5, 5), (3, 1, 2, 2), (4, 4), (0, 0)),   # stride > kernel, pixels no window reads
    ((1, 3, 4, 9), (5, 3, 4, 1), (3, 2), (2, 0)),   # stride > kernel in one direction only
    ((2, 1, 1, 1), (2, 1, 3, 3), (1, 1), (1, 1)),   # 1x1 image, all padding around it
])
def test_conv_edge_cases(case):
    for algo in _algorithms(case):
        for got, want in _run(case, np.float64, algo=algo):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
