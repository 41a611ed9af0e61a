"""Bit-packed kernels (cdl.binary / cdl.kernels.binary) against the NumPy oracles.

xnor_gemm's variants are tested in test_binary_gemm, test_binary_tiles and test_binary_hybrid.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl import bitops
from cdl.kernels import binary as K
from cdl.kernels import reference as ref

from .._fuzz import conv_cases


def random_packed(rng, rows, n):
    """Packed rows of n random signs (zero tails), as pack_bits makes them."""
    return ref.pack_bits(rng.standard_normal((rows, n)))


# -- pack / unpack -------------------------------------------------------------

# -- binary_matmul -------------------------------------------------------------

# -- packed im2col and binary conv ----------------------------------------------

@settings(max_examples=40, deadline=None)
@given(conv_cases(), st.integers(0, 2**31), st.sampled_from([1, 5, 64, 70, 130]))
def test_im2col_bits_packs_the_im2col_rows(case, seed, C):
    xs, ws, (sh, sw), (ph, pw) = case
    xs = (xs[0], C, *xs[2:])
    kh, kw = ws[2:]
    x = np.random.default_rng(seed).standard_normal(xs)
    px = bitops.pack_pixels(x)
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
        bitops.binary_matmul(a, b, 2**31)
    with pytest.raises(ValueError, match="xnor_gemm"):
        K.xnor_gemm(a, b, 2**31, np.zeros((1, 1), np.int32))


def test_binary_matmul_takes_numpy_int_n_and_refuses_floats():
    a = b = bitops.pack_bits(np.ones((1, 70)))
    assert bitops.binary_matmul(a, b, np.int64(70))[0, 0] == 70
    with pytest.raises(ValueError, match=r"binary_matmul: n \(the number of valid bits\) must be "
                                         r"an int >= 0, got 70\.0"):
        bitops.binary_matmul(a, b, 70.0)


def test_unpack_bits_float16():
    """Issue 17: dtype=float16 raised NotImplementedError from Numba."""
    x = np.array([[1.0, -2.0, 0.0, -0.5, 3.0]])
    u = bitops.unpack_bits(bitops.pack_bits(x), 5, dtype=np.float16)
    assert u.dtype == np.float16
    np.testing.assert_array_equal(u, [[1, -1, 1, -1, 1]])
    with pytest.raises(ValueError, match="unpack_bits: dtype must be a float type"):
        bitops.unpack_bits(bitops.pack_bits(x), 5, dtype=np.int8)
