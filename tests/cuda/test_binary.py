"""CUDA twins of cdl.kernels.binary against the CPU kernels: bit for bit, on tiny shapes."""
import numpy as np
import pytest

from cdl import binary
from cdl import kernels as CPU
from cdl.backend import is_device_array, kernels_for
from cdl.kernels import reference as ref

from ..conftest import host, on


def _gpu(*arrays):
    moved = on("cuda", *arrays)
    moved = moved if isinstance(moved, list) else [moved]
    return kernels_for(moved[0]), moved


def _words(n):
    return -(-n // 64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8])
@pytest.mark.parametrize("n", [1, 64, 70, 130])
def test_pack_and_unpack_match_cpu(dtype, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((3, n)) * 3).astype(dtype)
    x[0, 0] = 0
    p = CPU.pack_signs(x, np.empty((3, _words(n)), np.uint64))
    K, (xg,) = _gpu(x)
    pg = K.pack_signs(xg, K.empty((3, _words(n)), np.uint64))
    np.testing.assert_array_equal(host(pg), p)
    for out_dtype in (np.float32, np.float64):
        want = CPU.unpack_signs(p, np.empty((3, n), out_dtype))
        np.testing.assert_array_equal(host(K.unpack_signs(pg, K.empty((3, n), out_dtype))), want)


@pytest.mark.parametrize("M, N, n", [(3, 2, 70), (3, 2, 128), (1, 1, 1), (2, 3, 64)])
def test_xnor_gemm_matches_cpu(M, N, n):
    rng = np.random.default_rng(M * 100 + n)
    a = ref.pack_bits(rng.standard_normal((M, n)))
    b = ref.pack_bits(rng.standard_normal((N, n)))
    want = CPU.xnor_gemm(a, b, n, np.empty((M, N), np.int32))
    np.testing.assert_array_equal(want, ref.binary_matmul(a, b, n))
    K, (ag, bg) = _gpu(a, b)
    got = K.xnor_gemm(ag, bg, n, K.empty((M, N), np.int32))
    assert is_device_array(got)
    np.testing.assert_array_equal(host(got), want)


def test_xnor_gemm_on_the_gpu_ignores_tail_bits():
    rng = np.random.default_rng(3)
    n = 70
    a, b = ref.pack_bits(rng.standard_normal((2, n))), ref.pack_bits(rng.standard_normal((2, n)))
    want = ref.binary_matmul(a, b, n)
    dirty = a.copy()
    dirty[:, 1] |= np.uint64(0xFFFF) << np.uint64(20)  # bits 84..99, past n = 70
    K, (dg, bg) = _gpu(dirty, b)
    np.testing.assert_array_equal(host(K.xnor_gemm(dg, bg, n, K.empty((2, 2), np.int32))), want)
    with pytest.raises(ValueError, match="xnor_gemm"):
        K.xnor_gemm(dg, bg, 200, K.empty((2, 2), np.int32))


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (1, 65, 1, 2)])
def test_pack_channels_matches_cpu(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    N, C, H, W = shape
    want = CPU.pack_channels(x, np.empty((N, H, W, _words(C)), np.uint64))
    K, (xg,) = _gpu(x)
    got = K.pack_channels(xg, K.empty((N, H, W, _words(C)), np.uint64))
    np.testing.assert_array_equal(host(got), want)


@pytest.mark.parametrize("shape, k, s, p", [((1, 3, 4, 4), 3, 1, 1), ((1, 65, 2, 3), 2, 1, 1),
                                            ((2, 2, 3, 3), 2, 2, 0)])
def test_im2col_bits_matches_cpu(shape, k, s, p):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    N, C, H, W = shape
    px = CPU.pack_channels(x, np.empty((N, H, W, _words(C)), np.uint64))
    oh, ow = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    out_shape = (N * oh * ow, _words(C * k * k))
    want = CPU.im2col_bits(px, C, k, k, s, s, p, p, oh, ow, np.empty(out_shape, np.uint64))
    K, (pg,) = _gpu(px)
    got = K.im2col_bits(pg, C, k, k, s, s, p, p, oh, ow, K.empty(out_shape, np.uint64))
    np.testing.assert_array_equal(host(got), want)


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 1, 1)])
def test_maxpool_bits_matches_cpu(k, s, p):
    rng = np.random.default_rng(2)
    px = rng.integers(0, 2**63, (1, 4, 4, 1), dtype=np.uint64)
    up = np.array([rng.integers(0, 2**63)], dtype=np.uint64)
    oh = (4 + 2 * p - k) // s + 1
    want = CPU.maxpool_bits(px, up, k, k, s, s, p, p, np.empty((1, oh, oh, 1), np.uint64))
    K, (pg, ug) = _gpu(px, up)
    got = K.maxpool_bits(pg, ug, k, k, s, s, p, p, K.empty((1, oh, oh, 1), np.uint64))
    np.testing.assert_array_equal(host(got), want)


@pytest.mark.slow  # seconds in the CUDA simulator
def test_threshold_pack_matches_cpu():
    rng = np.random.default_rng(4)
    z = rng.integers(-9, 10, (3, 70)).astype(np.int32)
    thr = rng.integers(-5, 6, 70).astype(np.int32)
    up = rng.random(70) < 0.5
    want = CPU.threshold_pack(z, thr, up, np.empty((3, 2), np.uint64))
    K, (zg, tg, ug) = _gpu(z, thr, up)
    np.testing.assert_array_equal(host(K.threshold_pack(zg, tg, ug, K.empty((3, 2), np.uint64))),
                                  want)


def test_binary_api_on_device_arrays():
    """pack_bits, unpack_bits and binary_matmul take device arrays and give device arrays."""
    rng = np.random.default_rng(6)
    n = 70
    x, w = rng.standard_normal((3, n)).astype(np.float32), rng.standard_normal((2, n))
    xg, wg = on("cuda", x, w)
    a, b = binary.pack_bits(xg), binary.pack_bits(wg)
    assert is_device_array(a) and a.shape == (3, 2)
    np.testing.assert_array_equal(host(a), binary.pack_bits(x))
    out = binary.binary_matmul(a, b, n)
    assert is_device_array(out) and out.dtype == np.int32
    np.testing.assert_array_equal(host(out), binary.binary_matmul(binary.pack_bits(x),
                                                                  binary.pack_bits(w), n))
    signs = binary.unpack_bits(a, n)
    assert is_device_array(signs)
    np.testing.assert_array_equal(host(signs), np.where(x >= 0, 1.0, -1.0))
    with pytest.raises(ValueError, match="split between the CPU and the GPU"):
        binary.binary_matmul(a, binary.pack_bits(w), n)
