"""Bit operations on packed +-1 values: pack_bits, unpack_bits, binary_matmul, binary_conv2d.

The bit layout (and why n - 2*popcount(a ^ b) is the +-1 dot product) is
specified once, in the docstring of ``cdl.kernels.binary``.

    a = pack_bits(x)                  # x (M, K) float -> a (M, ceil(K/64)) uint64
    b = pack_bits(w)                  # w (N, K)
    y = binary_matmul(a, b, K)        # int32 (M, N) == sign(x) @ sign(w).T

These functions validate their inputs (dtype, shape, contiguity, the bit
count, zero tails) before any compiled code touches memory. Packed
inference of whole models is ``Sequential.pack()`` (``cdl.packed``).
``cdl.binary`` is this module's older name and re-exports it.

pack_bits, unpack_bits and binary_matmul also take numba.cuda device arrays
and return device arrays (the kernels of ``cdl.cuda.binary``). What a check
would have to copy back to the host is not checked there: NaN packs as -1
(NaN >= 0 is false), and bits beyond n are ignored by the GPU product rather
than refused.
"""
import numpy as np

from cdl._checks import (INT32_MAX, check_float, check_int, conv_output_hw,
                         device_c_contiguous, pair)
from cdl.backend import is_device_array, kernels_for


def _words(n):
    return (n + 63) // 64


def pack_bits(x):
    """Sign bits of x packed along the last axis. x (..., n) -> uint64 (..., ceil(n/64)).

    Bit 1 where x >= 0 (+1), bit 0 elsewhere (-1), tail bits 0. x is a real
    (float or integer) array; NaN has no sign and raises ValueError (on the
    GPU it packs as -1: see the module doc).
    """
    device = is_device_array(x)
    if not device and not isinstance(x, np.ndarray):
        raise ValueError(f"pack_bits: x must be a NumPy array, got {type(x).__name__}")
    if x.dtype.kind not in "fiu":
        raise ValueError(f"pack_bits: x must be a real (float or integer) array, got {x.dtype} "
                         f"of shape {x.shape}")
    shape = tuple(x.shape)  # a plain tuple (the CUDA simulator's refuses negative indexes)
    if x.ndim < 1 or shape[-1] == 0:
        raise ValueError(f"pack_bits: x needs a non-empty last axis to pack, got shape {shape}")
    n = shape[-1]
    if device:
        x2 = _device_rows("pack_bits", "x", x, n)
        K = kernels_for(x2)
        out = K.empty((x2.shape[0], _words(n)), np.uint64)
        return K.pack_signs(x2, out).reshape(*shape[:-1], _words(n))
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise ValueError(f"pack_bits: x of shape {x.shape} holds NaN, which has no sign")
    x2 = np.ascontiguousarray(x.reshape(-1, n))
    out = np.empty((x2.shape[0], _words(n)), dtype=np.uint64)
    if x2.shape[0]:
        kernels_for(x2).pack_signs(x2, out)
    return out.reshape(*x.shape[:-1], _words(n))


def _device_rows(who, name, a, last):
    """A C-contiguous device array a as 2-D rows of its last axis (a view), or ValueError."""
    if a.dtype == np.float16:
        raise ValueError(f"{who}: {name} is float16 on the GPU; cast it to float32 first")
    if not device_c_contiguous(a):
        raise ValueError(f"{who}: {name} of shape {a.shape} on the GPU is not C-contiguous")
    return a.reshape(a.size // last, last)


def _check_n(who, n, W):
    """n, the number of valid bits, as an int in [1, 64*W], or ValueError."""
    n = check_int(who, "n (the number of valid bits)", n, 0)
    if not 1 <= n <= 64 * W:
        raise ValueError(f"{who}: n = {n} valid bits does not fit {W} packed words "
                         f"(1 <= n <= {64 * W})")
    return n


def _check_packed(who, name, p, ndim=2):
    device = is_device_array(p)
    if not device and not isinstance(p, np.ndarray):
        raise ValueError(f"{who}: {name} must be a NumPy array of packed uint64 words, "
                         f"got {type(p).__name__}")
    if p.dtype != np.uint64:
        raise ValueError(f"{who}: {name} must hold uint64 packed words (from pack_bits), got "
                         f"{p.dtype} of shape {p.shape}")
    if (ndim == 2 and p.ndim != 2) or p.ndim < 1:
        want = "2-D (rows, words)" if ndim == 2 else "at least 1-D (..., words)"
        raise ValueError(f"{who}: {name} must be {want}, got shape {p.shape}")
    if p.shape[p.ndim - 1] == 0:
        raise ValueError(f"{who}: {name} has no words, shape {p.shape}")
    if not (device_c_contiguous(p) if device else p.flags.c_contiguous):
        raise ValueError(f"{who}: {name} of shape {p.shape} is not C-contiguous "
                         f"(pass np.ascontiguousarray({name}))")
    return p


def _check_tail(who, name, p, n):
    """ValueError when bits at positions >= n are set (the formula needs them zero).

    Host arrays only: the GPU product masks those bits instead (a check would copy p back).
    """
    if is_device_array(p):
        return
    w, r = divmod(n, 64)
    tail = p[..., w:]
    if tail.size == 0:
        return
    first = tail[..., 0] & ~np.uint64((1 << r) - 1) if r else tail[..., 0]
    if first.any() or tail[..., 1:].any():
        raise ValueError(f"{who}: {name} of shape {p.shape} has bits set beyond the n = {n} "
                         f"valid bits; packed rows must have zero tails (pack_bits does this)")


def unpack_bits(p, n, dtype=np.float32):
    """+-1 values from packed words. p (..., W) uint64 -> (..., n) of dtype; inverse of pack_bits."""
    p = _check_packed("unpack_bits", "p", p, ndim=None)
    shape = tuple(p.shape)
    n = _check_n("unpack_bits", n, shape[-1])
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"unpack_bits: dtype must be a float type, got {dtype}")
    p2 = p.reshape(p.size // shape[-1], shape[-1])
    K = kernels_for(p2)
    if is_device_array(p):
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"unpack_bits: dtype {dtype} on the GPU; use float32 or float64")
        out = K.empty((p2.shape[0], n), dtype)
        return K.unpack_signs(p2, out).reshape(*shape[:-1], n)
    # the kernel writes float32/float64 only (Numba has no float16); +-1 is exact in any float
    work = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
    out = np.empty((p2.shape[0], n), dtype=work)
    if p2.shape[0]:
        K.unpack_signs(p2, out)
    return out.astype(dtype, copy=False).reshape(*shape[:-1], n)


def binary_matmul(a, b, n):
    """+-1 dot products of packed rows. a (M, W), b (N, W) uint64 -> int32 (M, N).

    out[i, j] = n - 2 * popcount(a[i] XOR b[j]) = sum_k A[i, k] * B[j, k] for
    the +-1 matrices A = unpack_bits(a, n), B = unpack_bits(b, n). Parallel
    over blocks of rows and columns (see ``cdl.kernels.binary.xnor_gemm``).
    Device arrays a and b (both) give a device array (``cdl.cuda.binary``).
    """
    a = _check_packed("binary_matmul", "a", a)
    b = _check_packed("binary_matmul", "b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"binary_matmul: a {a.shape} and b {b.shape} differ in the number "
                         f"of packed words per row ({a.shape[1]} vs {b.shape[1]})")
    n = _check_n("binary_matmul", n, a.shape[1])
    if n > INT32_MAX:  # the dot products lie in [-n, n]: beyond int32 they would wrap
        raise ValueError(f"binary_matmul: n = {n} valid bits does not fit the int32 output "
                         f"(n <= {INT32_MAX})")
    _check_tail("binary_matmul", "a", a, n)
    _check_tail("binary_matmul", "b", b, n)
    K = kernels_for(a, b)
    out = K.empty((a.shape[0], b.shape[0]), np.int32)
    if out.size:
        K.xnor_gemm(a, b, n, out)
    return out


def pack_conv_weights(w):
    """w (F, C, KH, KW) real -> uint64 (F, ceil(KH*KW*C/64)): sign bits in im2col_bits order.

    The reduction axis is packed in (i, j, c) order, channel fastest, to
    match ``cdl.kernels.binary.im2col_bits``.
    """
    F = w.shape[0]
    return pack_bits(np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F, -1))


def padding_correction(w_signs, in_hw, stride, pad):
    """(OH*OW, F) int32 that turns -1 padding into zero padding (see binary_conv2d).

    w_signs (F, C, KH, KW) holds the +-1 weights, in_hw is the input's (H, W);
    stride and pad are (h, w) pairs."""
    F = w_signs.shape[0]
    ones = np.ones((1, w_signs.shape[1], *in_hw), dtype=np.float64)
    oh, ow = conv_output_hw("padding_correction", in_hw, w_signs.shape[2:], stride, pad)
    signs = np.ascontiguousarray(w_signs, dtype=np.float64)
    inside = kernels_for(ones).conv2d_forward(ones, signs, None, stride, pad,
                                              np.empty((1, F, oh, ow), dtype=np.float64))[0]
    total = w_signs.reshape(F, -1).sum(axis=1, dtype=np.float64)
    corr = np.rint(total[:, None, None] - inside).astype(np.int32)
    return np.ascontiguousarray(corr.reshape(F, -1).T)


def conv_dots(px, C, w_packed, kernel, stride, pad, correction):
    """int32 (N*OH*OW, F): zero-padded convolution of packed pixels with packed weights.

    px (N, H, W, ceil(C/64)) from ``cdl.kernels.binary.pack_channels`` (or a
    packed model's thresholds), w_packed from ``pack_conv_weights``,
    correction from ``padding_correction`` (None without padding); kernel,
    stride and pad are (h, w) pairs. Rows are output pixels (n, oh, ow),
    columns filters. Validated by the callers.
    """
    N, H, Wd = px.shape[:3]
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    n = C * kh * kw
    K = kernels_for(px, w_packed)
    cols = K.im2col_bits(px, C, kh, kw, sh, sw, ph, pw, oh, ow,
                         np.empty((N * oh * ow, _words(n)), dtype=np.uint64))
    F = w_packed.shape[0]
    dots = K.xnor_gemm(cols, w_packed, n, np.empty((N * oh * ow, F), dtype=np.int32))
    if correction is not None:
        dots.reshape(N, oh * ow, F)[...] += correction
    return dots


def pack_pixels(x):
    """x (N, C, H, W) real -> uint64 (N, H, W, ceil(C/64)): each pixel's channel signs."""
    N, C, H, Wd = x.shape
    px = np.empty((N, H, Wd, _words(C)), dtype=np.uint64)
    x = np.ascontiguousarray(x)
    return kernels_for(x).pack_channels(x, px)


def binary_conv2d(x, w, stride=1, pad=0):
    """Convolution of +-1 tensors. x (N, C, H, W), w (F, C, KH, KW) real -> int32 (N, F, OH, OW).

    Computes conv(sign(x), sign(w)) with zero padding, exactly as Conv2D does
    on the binarized tensors: each pixel's channels are packed into words,
    a packed im2col gathers the windows (bits along the reduction axis in
    (i, j, c) order, weights likewise) and ``binary_matmul`` multiplies.

    Padding scheme: a padded position has no +-1 value, so the packed
    im2col stores bit 0 (-1) there and each output is corrected afterwards.
    With D the packed product at output (oh, ow) and P the set of taps of
    that window that fall in the padding,

        y = D + sum_{t in P} sign(w)[f, t]      (their -1 * w terms removed)
          = D + T_f - V[f, oh, ow],

    T_f the sum of all of sign(w)[f] and V = conv(ones, sign(w)) with zero
    padding the sum over the taps inside the image. The correction T - V
    depends only on the weights and the input size, so packed models compute
    it once per input size; interior outputs get 0. stride and pad take an int
    or an (h, w) pair, as for Conv2D.
    """
    x = check_float("binary_conv2d", x, ndim=4, layout="(N, C, H, W)")
    w = check_float("binary_conv2d", w, ndim=4, layout="(F, C, KH, KW)", what="w")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"binary_conv2d: x {x.shape} has {x.shape[1]} channels but w {w.shape} "
                         f"expects {w.shape[1]}")
    for name, arr in (("x", x), ("w", w)):
        if np.isnan(arr).any():
            raise ValueError(f"binary_conv2d: {name} of shape {arr.shape} holds NaN")
    stride = pair("binary_conv2d", "stride", stride, 1)
    pad = pair("binary_conv2d", "pad", pad, 0)
    kernel = w.shape[2:]
    oh, ow = conv_output_hw("binary_conv2d", x.shape[2:], kernel, stride, pad)
    corr = None
    if any(pad):
        corr = padding_correction(np.where(w >= 0, 1.0, -1.0), x.shape[2:], stride, pad)
    dots = conv_dots(pack_pixels(x), x.shape[1], pack_conv_weights(w), kernel, stride, pad, corr)
    N, F = x.shape[0], w.shape[0]
    return np.ascontiguousarray(dots.reshape(N, oh, ow, F).transpose(0, 3, 1, 2))


__all__ = ["pack_bits", "unpack_bits", "binary_matmul", "binary_conv2d", "pack_conv_weights",
           "pack_pixels", "padding_correction", "conv_dots"]
