"""cdl.bitops: pack_bits, unpack_bits, binary_matmul and binary_conv2d against the NumPy
oracles (cdl.kernels.reference), and their input checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl import bitops
from cdl.kernels import reference as ref

from ._fuzz import conv_cases


def random_packed(rng, rows, n):
    """Packed rows of n random signs (zero tails), as pack_bits makes them."""
    return ref.pack_bits(rng.standard_normal((rows, n)))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 200), st.sampled_from([np.float32, np.float64, np.int8]),
       st.integers(0, 2**31))
def test_pack_bits_matches_reference(lead, n, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((lead, 2, n)) * 3).astype(dtype)
    p = bitops.pack_bits(x)
    assert p.dtype == np.uint64 and p.shape == (lead, 2, -(-n // 64))
    np.testing.assert_array_equal(p, ref.pack_bits(x))
    np.testing.assert_array_equal(bitops.unpack_bits(p, n), np.where(x >= 0, 1.0, -1.0))



def test_pack_bits_layout_is_little_endian_per_word():
    x = -np.ones(130, np.float32)
    x[[0, 5, 63, 64, 129]] = 1.0
    p = bitops.pack_bits(x)
    assert p.tolist() == [1 | 1 << 5 | 1 << 63, 1, 2]  # bit j in word j // 64 at j % 64



def test_zero_and_negative_zero_pack_as_plus_one():
    p = bitops.pack_bits(np.array([0.0, -0.0, -1e-30, np.inf, -np.inf], np.float64))
    assert int(p[0]) == 0b01011



def test_unpack_bits_dtype_and_tail():
    p = bitops.pack_bits(np.ones((2, 70)))
    assert int(p[0, 1]) == (1 << 6) - 1  # the tail of the last word stays zero
    u = bitops.unpack_bits(p, 70, dtype=np.float64)
    assert u.dtype == np.float64 and (u == 1).all()



def test_pack_bits_accepts_non_contiguous_input():
    x = np.random.default_rng(0).standard_normal((8, 100))
    np.testing.assert_array_equal(bitops.pack_bits(x[:, ::2]), ref.pack_bits(x[:, ::2]))



@pytest.mark.parametrize("bad, match", [
    (np.array([1.0, np.nan]), "NaN"),
    (np.zeros((2, 0)), "non-empty last axis"),
    (np.array([True, False]), "real"),
    ([1.0, 2.0], "NumPy array"),
])
def test_pack_bits_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        bitops.pack_bits(bad)



@st.composite
def gemm_shapes(draw):
    return draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(1, 300))



@settings(max_examples=60, deadline=None)
@given(gemm_shapes(), st.integers(0, 2**31))
def test_binary_matmul_matches_float_dot_product(shape, seed):
    M, N, n = shape
    rng = np.random.default_rng(seed)
    a, b = random_packed(rng, M, n), random_packed(rng, N, n)
    out = bitops.binary_matmul(a, b, n)
    assert out.dtype == np.int32 and out.shape == (M, N)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, n))



def test_binary_matmul_extremes():
    n = 100
    ones = bitops.pack_bits(np.ones((2, n)))
    minus = bitops.pack_bits(-np.ones((3, n)))
    assert (bitops.binary_matmul(ones, ones, n) == n).all()
    assert (bitops.binary_matmul(ones, minus, n) == -n).all()



def test_binary_matmul_bad_input():
    a = np.zeros((3, 2), np.uint64)
    b = np.zeros((4, 2), np.uint64)
    with pytest.raises(ValueError, match="uint64"):
        bitops.binary_matmul(a.astype(np.int64), b, 100)
    with pytest.raises(ValueError, match="words per row"):
        bitops.binary_matmul(a, np.zeros((4, 3), np.uint64), 100)
    with pytest.raises(ValueError, match="does not fit 2 packed words"):
        bitops.binary_matmul(a, b, 129)
    with pytest.raises(ValueError, match="does not fit"):
        bitops.binary_matmul(a, b, 0)
    with pytest.raises(ValueError, match="must be an int"):
        bitops.binary_matmul(a, b, 100.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        bitops.binary_matmul(np.zeros((3, 4), np.uint64)[:, ::2], b, 100)
    with pytest.raises(ValueError, match="2-D"):
        bitops.binary_matmul(np.zeros(2, np.uint64), b, 100)
    bad_tail = a.copy()
    bad_tail[1, 1] = np.uint64(1) << np.uint64(40)  # bit 104 > n = 100
    with pytest.raises(ValueError, match="beyond the n = 100"):
        bitops.binary_matmul(bad_tail, b, 100)
    with pytest.raises(ValueError, match="beyond the n = 64"):
        bitops.binary_matmul(a, b + np.uint64(1), 64)  # a whole word past n



def test_binary_matmul_allows_a_shorter_n_with_zero_words():
    rng = np.random.default_rng(3)
    a, b = random_packed(rng, 4, 50), random_packed(rng, 5, 50)
    wide_a, wide_b = np.hstack([a, np.zeros((4, 1), np.uint64)]), np.hstack([b, np.zeros((5, 1), np.uint64)])
    np.testing.assert_array_equal(bitops.binary_matmul(wide_a, wide_b, 50), ref.binary_matmul(a, b, 50))



def test_binary_matmul_empty_rows():
    out = bitops.binary_matmul(np.zeros((0, 2), np.uint64), np.zeros((3, 2), np.uint64), 128)
    assert out.shape == (0, 3)




@pytest.mark.slow
@settings(max_examples=50, deadline=None)
@given(conv_cases(), st.integers(0, 2**31))
def test_binary_conv2d_matches_float_conv_of_signs(case, seed):
    xs, ws, s, p = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws)
    y = bitops.binary_conv2d(x, w, stride=s, pad=p)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, ref.binary_conv2d(x, w, *s, *p))



def test_padding_correction_vanishes_inside_and_counts_padded_taps():
    w = np.ones((1, 1, 3, 3))
    corr = bitops.padding_correction(w, (4, 4), (1, 1), (1, 1)).reshape(4, 4)  # (OH*OW, F=1)
    assert corr[1:3, 1:3].tolist() == [[0, 0], [0, 0]]
    assert corr[0, 0] == 5 and corr[0, 1] == 3  # corner: 5 taps in the padding, edge: 3



def test_binary_conv2d_bad_input():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="channels"):
        bitops.binary_conv2d(x, np.zeros((3, 4, 3, 3)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        bitops.binary_conv2d(x, np.zeros((3, 2, 7, 7)))
    with pytest.raises(ValueError, match="NaN"):
        bitops.binary_conv2d(x * np.nan, np.zeros((3, 2, 3, 3)))
