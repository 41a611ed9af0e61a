"""Bit-packed kernels (cdl.binary / cdl.kernels.binary) against the NumPy oracles.

xnor_gemm's variants are tested in test_binary_gemm, test_binary_tiles and test_binary_hybrid.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl import binary
from cdl.kernels import binary as K
from cdl.kernels import reference as ref


def random_packed(rng, rows, n):
    """Packed rows of n random signs (zero tails), as pack_bits makes them."""
    return ref.pack_bits(rng.standard_normal((rows, n)))


# -- pack / unpack -------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 200), st.sampled_from([np.float32, np.float64, np.int8]),
       st.integers(0, 2**31))
def test_pack_bits_matches_reference(lead, n, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((lead, 2, n)) * 3).astype(dtype)
    p = binary.pack_bits(x)
    assert p.dtype == np.uint64 and p.shape == (lead, 2, -(-n // 64))
    np.testing.assert_array_equal(p, ref.pack_bits(x))
    np.testing.assert_array_equal(binary.unpack_bits(p, n), np.where(x >= 0, 1.0, -1.0))


def test_pack_bits_layout_is_little_endian_per_word():
    x = -np.ones(130, np.float32)
    x[[0, 5, 63, 64, 129]] = 1.0
    p = binary.pack_bits(x)
    assert p.tolist() == [1 | 1 << 5 | 1 << 63, 1, 2]  # bit j in word j // 64 at j % 64


def test_zero_and_negative_zero_pack_as_plus_one():
    p = binary.pack_bits(np.array([0.0, -0.0, -1e-30, np.inf, -np.inf], np.float64))
    assert int(p[0]) == 0b01011


def test_unpack_bits_dtype_and_tail():
    p = binary.pack_bits(np.ones((2, 70)))
    assert int(p[0, 1]) == (1 << 6) - 1  # the tail of the last word stays zero
    u = binary.unpack_bits(p, 70, dtype=np.float64)
    assert u.dtype == np.float64 and (u == 1).all()


def test_pack_bits_accepts_non_contiguous_input():
    x = np.random.default_rng(0).standard_normal((8, 100))
    np.testing.assert_array_equal(binary.pack_bits(x[:, ::2]), ref.pack_bits(x[:, ::2]))


@pytest.mark.parametrize("bad, match", [
    (np.array([1.0, np.nan]), "NaN"),
    (np.zeros((2, 0)), "non-empty last axis"),
    (np.array([True, False]), "real"),
    ([1.0, 2.0], "NumPy array"),
])
def test_pack_bits_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        binary.pack_bits(bad)


# -- binary_matmul -------------------------------------------------------------

@st.composite
def gemm_shapes(draw):
    return draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(1, 300))


@settings(max_examples=60, deadline=None)
@given(gemm_shapes(), st.integers(0, 2**31))
def test_binary_matmul_matches_float_dot_product(shape, seed):
    M, N, n = shape
    rng = np.random.default_rng(seed)
    a, b = random_packed(rng, M, n), random_packed(rng, N, n)
    out = binary.binary_matmul(a, b, n)
    assert out.dtype == np.int32 and out.shape == (M, N)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, n))


def test_binary_matmul_extremes():
    n = 100
    ones = binary.pack_bits(np.ones((2, n)))
    minus = binary.pack_bits(-np.ones((3, n)))
    assert (binary.binary_matmul(ones, ones, n) == n).all()
    assert (binary.binary_matmul(ones, minus, n) == -n).all()


def test_binary_matmul_bad_input():
    a = np.zeros((3, 2), np.uint64)
    b = np.zeros((4, 2), np.uint64)
    with pytest.raises(ValueError, match="uint64"):
        binary.binary_matmul(a.astype(np.int64), b, 100)
    with pytest.raises(ValueError, match="words per row"):
        binary.binary_matmul(a, np.zeros((4, 3), np.uint64), 100)
    with pytest.raises(ValueError, match="does not fit 2 packed words"):
        binary.binary_matmul(a, b, 129)
    with pytest.raises(ValueError, match="does not fit"):
        binary.binary_matmul(a, b, 0)
    with pytest.raises(ValueError, match="must be an int"):
        binary.binary_matmul(a, b, 100.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        binary.binary_matmul(np.zeros((3, 4), np.uint64)[:, ::2], b, 100)
    with pytest.raises(ValueError, match="2-D"):
        binary.binary_matmul(np.zeros(2, np.uint64), b, 100)
    bad_tail = a.copy()
    bad_tail[1, 1] = np.uint64(1) << np.uint64(40)  # bit 104 > n = 100
    with pytest.raises(ValueError, match="beyond the n = 100"):
        binary.binary_matmul(bad_tail, b, 100)
    with pytest.raises(ValueError, match="beyond the n = 64"):
        binary.binary_matmul(a, b + np.uint64(1), 64)  # a whole word past n


def test_binary_matmul_allows_a_shorter_n_with_zero_words():
    rng = np.random.default_rng(3)
    a, b = random_packed(rng, 4, 50), random_packed(rng, 5, 50)
    wide_a, wide_b = np.hstack([a, np.zeros((4, 1), np.uint64)]), np.hstack([b, np.zeros((5, 1), np.uint64)])
    np.testing.assert_array_equal(binary.binary_matmul(wide_a, wide_b, 50), ref.binary_matmul(a, b, 50))


def test_binary_matmul_empty_rows():
    out = binary.binary_matmul(np.zeros((0, 2), np.uint64), np.zeros((3, 2), np.uint64), 128)
    assert out.shape == (0, 3)


# -- packed im2col and binary conv ----------------------------------------------

@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 8))
    W = draw(st.integers(max(1, kw - 2 * pw), 8))
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 11))
    return (N, C, H, W), (F, C, kh, kw), (sh, sw), (ph, pw)


@settings(max_examples=50, deadline=None)
@given(conv_cases(), st.integers(0, 2**31))
def test_binary_conv2d_matches_float_conv_of_signs(case, seed):
    xs, ws, s, p = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws)
    y = binary.binary_conv2d(x, w, stride=s, pad=p)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, ref.binary_conv2d(x, w, *s, *p))


@settings(max_examples=40, deadline=None)
@given(conv_cases(), st.integers(0, 2**31), st.sampled_from([1, 5, 64, 70, 130]))
def test_im2col_bits_packs_the_im2col_rows(case, seed, C):
    xs, ws, (sh, sw), (ph, pw) = case
    xs = (xs[0], C, *xs[2:])
    kh, kw = ws[2:]
    x = np.random.default_rng(seed).standard_normal(xs)
    px = binary.pack_pixels(x)
    assert px.shape == (xs[0], xs[2], xs[3], -(-C // 64))
    np.testing.assert_array_equal(px, ref.pack_bits(x.transpose(0, 2, 3, 1)))
    oh, ow = ref.out_hw(xs[2], xs[3], kh, kw, sh, sw, ph, pw)
    cols = np.full((xs[0] * oh * ow, -(-C * kh * kw // 64)), 12345, np.uint64)
    K.im2col_bits(px, C, kh, kw, sh, sw, ph, pw, oh, ow, cols)
    # padding is bit 0 (-1): pad the sign image with -1 before the float im2col,
    # whose (c, i, j) columns are reordered to the packed (i, j, c) order
    signs = ref.pad_nchw(np.where(x >= 0, 1.0, -1.0), ph, pw, value=-1.0)
    col = ref.im2col(signs, kh, kw, sh, sw)
    col = col.reshape(-1, C, kh, kw).transpose(0, 2, 3, 1).reshape(len(col), -1)
    np.testing.assert_array_equal(cols, ref.pack_bits(col))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 140), st.integers(2, 7), st.integers(1, 3),
       st.integers(1, 3), st.integers(0, 2**31))
def test_maxpool_bits_equals_thresholds_after_max_pooling(N, C, H, k, s, seed):
    rng = np.random.default_rng(seed)
    p = min(rng.integers(0, 2), k // 2)
    if k > H + 2 * p:
        return
    z = rng.integers(-6, 7, (N, C, H, H)).astype(np.float64)
    thr = rng.integers(-4, 5, C)
    up = rng.random(C) < 0.5
    def bits(v):
        t, u = thr[None, :, None, None], up[None, :, None, None]
        return np.where(u, v >= t, v <= t)
    pooled = ref.maxpool2d_forward(z, k, k, s, s, p, p)
    want = ref.pack_bits(np.where(bits(pooled), 1.0, -1.0).transpose(0, 2, 3, 1))
    px = ref.pack_bits(np.where(bits(z), 1.0, -1.0).transpose(0, 2, 3, 1))
    up_words = ref.pack_bits(np.where(up, 1.0, -1.0))
    out = np.empty(want.shape, np.uint64)
    K.maxpool_bits(px, up_words, k, k, s, s, p, p, out)
    np.testing.assert_array_equal(out, want)


def test_padding_correction_vanishes_inside_and_counts_padded_taps():
    w = np.ones((1, 1, 3, 3))
    corr = binary.padding_correction(w, (4, 4), (1, 1), (1, 1)).reshape(4, 4)  # (OH*OW, F=1)
    assert corr[1:3, 1:3].tolist() == [[0, 0], [0, 0]]
    assert corr[0, 0] == 5 and corr[0, 1] == 3  # corner: 5 taps in the padding, edge: 3


def test_binary_conv2d_bad_input():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="channels"):
        binary.binary_conv2d(x, np.zeros((3, 4, 3, 3)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        binary.binary_conv2d(x, np.zeros((3, 2, 7, 7)))
    with pytest.raises(ValueError, match="NaN"):
        binary.binary_conv2d(x * np.nan, np.zeros((3, 2, 3, 3)))


def test_threshold_pack():
    rng = np.random.default_rng(5)
    z = rng.integers(-20, 20, (7, 130)).astype(np.int32)
    thr = rng.integers(-10, 10, 130).astype(np.int32)
    up = rng.random(130) < 0.5
    out = np.empty((7, 3), np.uint64)
    K.threshold_pack(z, thr, up, out)
    want = np.where(up, z >= thr, z <= thr)
    np.testing.assert_array_equal(out, ref.pack_bits(np.where(want, 1.0, -1.0)))


def test_binary_matmul_refuses_n_beyond_int32():
    """Issue 17: n >= 2^31 valid bits wrapped the int32 output (-2147483643) silently.

    np.zeros maps its pages lazily and the check comes before any bit is read,
    so the 2 x 256 MiB of words here are never touched.
    """
    W = 2**31 // 64 + 1
    a, b = np.zeros((1, W), np.uint64), np.zeros((1, W), np.uint64)
    with pytest.raises(ValueError, match=r"binary_matmul: n = 2147483648 .* int32 output"):
        binary.binary_matmul(a, b, 2**31)
    with pytest.raises(ValueError, match="xnor_gemm"):
        K.xnor_gemm(a, b, 2**31, np.zeros((1, 1), np.int32))


def test_binary_matmul_takes_numpy_int_n_and_refuses_floats():
    a = b = binary.pack_bits(np.ones((1, 70)))
    assert binary.binary_matmul(a, b, np.int64(70))[0, 0] == 70
    with pytest.raises(ValueError, match=r"binary_matmul: n \(the number of valid bits\) must be "
                                         r"an int >= 0, got 70\.0"):
        binary.binary_matmul(a, b, 70.0)


def test_unpack_bits_float16():
    """Issue 17: dtype=float16 raised NotImplementedError from Numba."""
    x = np.array([[1.0, -2.0, 0.0, -0.5, 3.0]])
    u = binary.unpack_bits(binary.pack_bits(x), 5, dtype=np.float16)
    assert u.dtype == np.float16
    np.testing.assert_array_equal(u, [[1, -1, 1, -1, 1]])
    with pytest.raises(ValueError, match="unpack_bits: dtype must be a float type"):
        binary.unpack_bits(binary.pack_bits(x), 5, dtype=np.int8)
