"""cdl.ops.im2col / col2im against the book's NumPy code, plus the adjoint identity."""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdl import ops
from cdl.kernels import im2col as kim2col
from cdl.kernels import reference as ref


@st.composite
def geometries(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 9))
    W = draw(st.integers(max(1, kw - 2 * pw), 9))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (N, C, H, W), (kh, kw), (sh, sw), (ph, pw)


@settings(max_examples=60, deadline=None)
@given(geometries(), st.sampled_from([np.float32, np.float64]))
def test_im2col_matches_book(g, dtype):
    shape, (kh, kw), (sh, sw), (ph, pw) = g
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    got = ops.im2col(x, kh, kw, stride=(sh, sw), pad=(ph, pw))
    want = ref.im2col(x, kh, kw, sh, sw, ph, pw)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(geometries(), st.sampled_from([np.float32, np.float64]))
def test_col2im_matches_book_and_is_adjoint(g, dtype):
    shape, (kh, kw), (sh, sw), (ph, pw) = g
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    col = rng.standard_normal(ref.im2col(x, kh, kw, sh, sw, ph, pw).shape)
    got = ops.col2im(col.astype(dtype), shape, kh, kw, stride=(sh, sw), pad=(ph, pw))
    assert got.dtype == dtype
    want = ref.col2im(col, shape, kh, kw, sh, sw, ph, pw)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # <im2col(x), col> == <x, col2im(col)>
    lhs = (ops.im2col(x, kh, kw, (sh, sw), (ph, pw)) * col).sum()
    rhs = (x * ops.col2im(col, shape, kh, kw, (sh, sw), (ph, pw))).sum()
    assert np.isclose(lhs, rhs, rtol=1e-10)


@pytest.mark.parametrize("case", [
    ((1, 1, 5, 5), 1, 1, 1, 0),   # 1x1 kernel
    ((2, 3, 7, 6), 2, 2, 3, 0),   # stride > kernel
    ((1, 2, 4, 4), 3, 3, 1, 1),   # padding
    ((3, 1, 3, 3), 5, 5, 1, 1),   # kernel larger than the image, fits the padded one
    ((2, 2, 9, 7), 3, 2, 2, 1),   # odd sizes, rectangular kernel
])
def test_edge_cases_both_implementations(case):
    shape, kh, kw, s, p = case
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    want = ref.im2col(x, kh, kw, s, s, p, p)
    oh, ow = ref.out_hw(*shape[2:], kh, kw, s, s, p, p)
    got_nb = np.empty_like(want)
    kim2col._im2col_rows_nb(x, got_nb, kh, kw, s, s, p, p, oh, ow)
    np.testing.assert_array_equal(ops.im2col(x, kh, kw, s, p), want)
    np.testing.assert_array_equal(got_nb, want)
    dx_nb = np.zeros(shape, np.float32)
    kim2col._col2im_rows_nb(want, dx_nb, kh, kw, s, s, p, p, oh, ow)
    np.testing.assert_allclose(ops.col2im(want, shape, kh, kw, s, p), dx_nb, rtol=1e-6)


def test_extension_is_built():
    assert kim2col._compiled() is not None, "cdl._im2col missing: pip install . builds it"


def test_noncontiguous_input_is_copied():
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32)
    xt = x.transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(ops.im2col(xt, 3, 3), ref.im2col(np.ascontiguousarray(xt), 3, 3))


@pytest.mark.parametrize("call, match", [
    (lambda: ops.im2col(np.zeros((2, 3, 4), np.float32), 2, 2), "4-D"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.int32), 2, 2), "float32 or float64"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 7, 2, pad=1), "larger than the padded"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 2, 2, stride=0), "stride"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 2, 2, stride=-1), "stride"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 2, 2, pad=-1), "pad"),
    (lambda: ops.im2col(np.zeros((0, 1, 4, 4), np.float32), 2, 2), "empty batch"),
    (lambda: ops.col2im(np.zeros((5, 4), np.float32), (1, 1, 4, 4), 2, 2), "does not match"),
    (lambda: ops.col2im(np.zeros((9, 4), np.float32), (1, 1, 4), 2, 2), "x_shape"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call, match", [
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 2, 2, stride=2**31),
     r"im2col: stride = 2147483648 is too large"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 2, 2, pad=(0, 2**31)),
     r"im2col: pad = 2147483648 is too large"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 2, 2, pad=2**30),
     r"im2col: output of 2147483651x2147483651 pixels .* too large"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 2.0, 2), r"im2col: kernel size"),
    (lambda: ops.im2col(np.zeros((1, 1, 4, 4), np.float32), 2, 2, stride=1.5), r"im2col: stride"),
    (lambda: ops.col2im(np.zeros((9, 4), np.float32), (1.7, 1, 4, 4), 2, 2),
     r"col2im: x_shape\[0\] must be a positive int, got 1\.7"),
    (lambda: ops.col2im(np.zeros((9, 4), np.float32), (1, 1, 4.0, 4), 2, 2),
     r"col2im: x_shape\[2\] must be a positive int, got 4\.0"),
    (lambda: ops.col2im(np.zeros((9, 4), np.float32), (1, 1, 4, 4), 2, 2, stride=2**31),
     r"col2im: stride = 2147483648 is too large"),
])
def test_geometry_is_refused_not_overflowed_or_truncated(call, match):
    """Issue 17: ints >= 2^31 raised OverflowError in the Cython call; col2im truncated 1.7."""
    with pytest.raises(ValueError, match=match):
        call()


def test_col2im_takes_numpy_int_shapes():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    col = ops.im2col(x, 2, 2)
    shape = tuple(np.int64(s) for s in x.shape)
    np.testing.assert_array_equal(ops.col2im(col, shape, 2, 2), ops.col2im(col, x.shape, 2, 2))


def test_extension_computes_oh_times_ow_in_64_bits():
    """OH*OW of im2col_t / col2im_t may pass 2^31 (Cython's int args would wrap in C int).

    Not testable by running it (the column buffer would need tens of GB), so this
    checks the source: every product of oh_n and ow_n is widened to Py_ssize_t first.
    """
    import pathlib
    import re
    src = (pathlib.Path(__file__).parents[1] / "csrc" / "im2col.pyx").read_text()
    products = re.findall(r"(\S*)\s*oh_n \* ow_n", src)
    assert products and all(p.endswith("<Py_ssize_t>") for p in products), products


@pytest.mark.parametrize("fn", ["im2col_t", "col2im_t"])
def test_kernel_wrappers_refuse_geometry_the_c_ints_cannot_hold(fn):
    """Direct callers of cdl.kernels.im2col get a ValueError, not Cython's OverflowError."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    col = np.zeros((9, 2), np.float32)
    args = {"im2col_t": (x, col), "col2im_t": (col, x)}[fn]
    with pytest.raises(ValueError, match=rf"{fn}: sh = 2147483648 is too large"):
        getattr(kim2col, fn)(*args, 0, 1, 3, 3, 2**31, 1, 0, 0, 1, 2)
    with pytest.raises(ValueError, match=rf"{fn}: pw must be an int >= 0, got 0\.0"):
        getattr(kim2col, fn)(*args, 0, 1, 3, 3, 1, 1, 0, 0.0, 1, 2)


# -- fuzz: the kernel entry points (cdl.kernels.im2col), the only door to the compiled loops --
# The references and the guarded buffers (sentinels on both sides, so that a write outside
# an output shows up without AddressSanitizer) are the fuzz harness's (tests/fuzz).
from .fuzz.fuzz_readers import _guarded, _guards_intact, ref_col2im_t, ref_im2col_t  # noqa: E402


@st.composite
def entry_geometries(draw, consistent=True):
    """x (N, C, H, W), a sample range and geometry; OH, OW those of the image when
    ``consistent``, else anything from 1 to 8 (as a direct caller may pass)."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    H = draw(st.integers(max(1, kh - 2 * ph), 7))
    W = draw(st.integers(max(1, kw - 2 * pw), 7))
    if consistent:
        oh, ow = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    else:
        oh, ow = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    n0 = draw(st.integers(0, N - 1))
    n1 = draw(st.integers(n0 + 1, N))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (N, C, H, W), (n0, n1, kh, kw, sh, sw, ph, pw, oh, ow), dtype


def _check_entry_points(shape, args, dtype):
    n0, n1, kh, kw, sh, sw, ph, pw, oh, ow = args
    N, C = shape[:2]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    buf, col = _guarded((C * kh * kw, (n1 - n0) * oh * ow), dtype)
    kim2col.im2col_t(x, col, *args)
    assert _guards_intact(buf), "im2col_t wrote outside col"
    np.testing.assert_array_equal(col, ref_im2col_t(x, *args))
    c = rng.standard_normal(col.shape).astype(dtype)
    buf, dx = _guarded(shape, dtype, 7.0)
    kim2col.col2im_t(c, dx, *args)
    assert _guards_intact(buf), "col2im_t wrote outside dx"
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx[n0:n1], ref_col2im_t(c, shape, *args), rtol=tol, atol=tol)
    assert (dx[:n0] == 7).all() and (dx[n1:] == 7).all(), "col2im_t wrote other samples"
    buf, rows = _guarded((N * oh * ow, C * kh * kw), dtype)
    kim2col.im2col_rows(x, kh, kw, sh, sw, ph, pw, oh, ow, rows)
    assert _guards_intact(buf), "im2col_rows wrote outside out"
    np.testing.assert_array_equal(rows, ref_im2col_t(x, 0, N, *args[2:]).T)
    buf, back = _guarded(shape, dtype, 7.0)
    kim2col.col2im_rows(rows, kh, kw, sh, sw, ph, pw, oh, ow, back)
    assert _guards_intact(buf), "col2im_rows wrote outside out"
    np.testing.assert_allclose(back, ref_col2im_t(rows.T, shape, 0, N, *args[2:]),
                               rtol=tol, atol=tol)


@settings(max_examples=150, deadline=None)
@given(entry_geometries())
def test_kernel_entry_points_follow_the_mapping_and_stay_in_their_buffers(g):
    _check_entry_points(*g)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(entry_geometries(consistent=False))
@example(((1, 1, 1, 1), (0, 1, 1, 1, 1, 1, 0, 5, 1, 1), np.float32))  # 4 values past col
def test_kernel_entry_points_refuse_any_other_oh_ow(g):
    """Direct callers may pass any OH, OW: the image's own give the documented mapping,
    any other a ValueError before the compiled loops run (they trusted OH, OW and wrote
    past col: 4 values for a pad of 2 on a 1x1 image)."""
    shape, (n0, n1, kh, kw, sh, sw, ph, pw, oh, ow), dtype = g
    H, W = shape[2:]
    fits = kh <= H + 2 * ph and kw <= W + 2 * pw
    if fits and (oh, ow) == ((H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1):
        _check_entry_points(*g)
    else:
        with pytest.raises(ValueError, match="does not match|larger than the padded input"):
            _check_entry_points(*g)
