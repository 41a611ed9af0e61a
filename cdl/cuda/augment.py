"""Data augmentation on the GPU: twins of cdl.kernels.augment (same names, same arguments).

Geometry, boxes and formulas are those of cdl.kernels.augment. The warp, the
hue and the saturation compute per pixel: one thread per output pixel
(n, i, j), looping over the channels; the other element-wise kernels run one
thread per output element; adjust_contrast reduces each image's grey level in
one block per image (cdl.cuda._reduce) and then scales that image in the same
block. All loops are grid-stride. Arithmetic runs in float64 where a float
literal meets x's dtype (as in the CPU's Numba kernels), so float32 results
agree with the CPU's to rounding, not bit for bit.

fill_boxes_uniform and add_gaussian_noise draw one seed from the generator
and generate on the device as cdl.cuda.dropout does (cdl.cuda._random:
xoroshiro128+, one state per thread): the same seed gives the same batch on the device, another one
than the CPU, which draws the whole batch from the generator itself.
"""
import math

import numpy as np
from numba import cuda, float64

from cdl.cuda._launch import grid
from cdl.cuda._random import (generators, xoroshiro128p_normal_float32,
                              xoroshiro128p_normal_float64, xoroshiro128p_uniform_float32,
                              xoroshiro128p_uniform_float64)
from cdl.cuda._reduce import MAX_THREADS as _T
from cdl.cuda._reduce import block_threads, tree_sum

_MAX_IMAGE_BLOCKS = 65535  # blocks of the per-image reduction; more images loop


@cuda.jit(device=True)
def _unit(v):
    """v clipped to [0, 1], NaN kept (as np.clip)."""
    if v < 0:
        return 0.0
    if v > 1:
        return 1.0
    return v


@cuda.jit
def _warp_affine_k(x, mats, active, fill, out):
    N, C, H, W = x.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, N * H * W, step):
        j = t % W
        i = (t // W) % H
        n = t // (W * H)
        if not active[n]:
            for c in range(C):
                out[n, c, i, j] = x[n, c, i, j]
            continue
        sx = mats[n, 0, 0] * j + mats[n, 0, 1] * i + mats[n, 0, 2]
        sy = mats[n, 1, 0] * j + mats[n, 1, 1] * i + mats[n, 1, 2]
        # also false for NaN: a degenerate point reads as fill, never as memory
        if not (-1.0 < sx and sx < W and -1.0 < sy and sy < H):
            for c in range(C):
                out[n, c, i, j] = fill
            continue
        fx = math.floor(sx)
        fy = math.floor(sy)
        wx = sx - fx
        wy = sy - fy
        x0 = int(fx)
        y0 = int(fy)
        in_x0, in_x1 = x0 >= 0, x0 + 1 < W
        in_y0, in_y1 = y0 >= 0, y0 + 1 < H
        w00 = (1.0 - wx) * (1.0 - wy)
        w01 = wx * (1.0 - wy)
        w10 = (1.0 - wx) * wy
        w11 = wx * wy
        for c in range(C):
            v00 = x[n, c, y0, x0] if in_y0 and in_x0 else fill
            v01 = x[n, c, y0, x0 + 1] if in_y0 and in_x1 else fill
            v10 = x[n, c, y0 + 1, x0] if in_y1 and in_x0 else fill
            v11 = x[n, c, y0 + 1, x0 + 1] if in_y1 and in_x1 else fill
            out[n, c, i, j] = w00 * v00 + w01 * v01 + w10 * v10 + w11 * v11


@cuda.jit(device=True)
def _in_box(boxes, n, i, j):
    return boxes[n, 0] <= i and i < boxes[n, 1] and boxes[n, 2] <= j and j < boxes[n, 3]


@cuda.jit
def _fill_boxes_k(x, boxes, values, out):
    N, C, H, W = x.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        j = t % W
        i = (t // W) % H
        c = (t // (W * H)) % C
        n = t // (W * H * C)
        out[n, c, i, j] = values[n, c] if _in_box(boxes, n, i, j) else x[n, c, i, j]


@cuda.jit
def _paste_boxes_k(x, boxes, src, src_index, out):
    N, C, H, W = x.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        j = t % W
        i = (t // W) % H
        c = (t // (W * H)) % C
        n = t // (W * H * C)
        if _in_box(boxes, n, i, j):
            out[n, c, i, j] = src[src_index[n], c, i, j]
        else:
            out[n, c, i, j] = x[n, c, i, j]


@cuda.jit
def _fill_boxes_uniform32_k(states, x, boxes, out):
    N, C, H, W = x.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        j = t % W
        i = (t // W) % H
        c = (t // (W * H)) % C
        n = t // (W * H * C)
        if _in_box(boxes, n, i, j):
            out[n, c, i, j] = xoroshiro128p_uniform_float32(states, start)
        else:
            out[n, c, i, j] = x[n, c, i, j]


@cuda.jit
def _fill_boxes_uniform64_k(states, x, boxes, out):
    N, C, H, W = x.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        j = t % W
        i = (t // W) % H
        c = (t // (W * H)) % C
        n = t // (W * H * C)
        if _in_box(boxes, n, i, j):
            out[n, c, i, j] = xoroshiro128p_uniform_float64(states, start)
        else:
            out[n, c, i, j] = x[n, c, i, j]


@cuda.jit
def _shift_hue_k(x, shifts, active, out):
    N, C, H, W = x.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, N * H * W, step):
        j = t % W
        i = (t // W) % H
        n = t // (W * H)
        r = _unit(x[n, 0, i, j])
        g = _unit(x[n, 1, i, j])
        b = _unit(x[n, 2, i, j])
        # max and min of three without the builtins (they fail for CUDA, numba/numba#10753)
        mx = r if r > g else g
        mx = mx if mx > b else b
        mn = r if r < g else g
        mn = mn if mn < b else b
        delta = mx - mn
        if active[n] and delta > 0.0:  # grey pixels have no hue to rotate
            if mx == r:
                h = ((g - b) / delta) / 6.0
            elif mx == g:
                h = (2.0 + (b - r) / delta) / 6.0
            else:
                h = (4.0 + (r - g) / delta) / 6.0
            h = (h + shifts[n]) % 1.0
            s = delta / mx
            v = mx
            h6 = h * 6.0
            k = int(h6)
            if k > 5:
                k = 5
            frac = h6 - k
            p = v * (1.0 - s)
            q = v * (1.0 - s * frac)
            u = v * (1.0 - s * (1.0 - frac))
            if k == 0:
                r, g, b = v, u, p
            elif k == 1:
                r, g, b = q, v, p
            elif k == 2:
                r, g, b = p, v, u
            elif k == 3:
                r, g, b = p, q, v
            elif k == 4:
                r, g, b = u, p, v
            else:
                r, g, b = v, p, q
        out[n, 0, i, j] = r
        out[n, 1, i, j] = g
        out[n, 2, i, j] = b


@cuda.jit
def _brightness_k(x, factors, out):
    L = x.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        n, k = t // L, t % L
        out[n, k] = _unit(x[n, k] * factors[n])


@cuda.jit
def _contrast_k(x, factors, out):
    s = cuda.shared.array(_T, float64)
    N, C, L = x.shape
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    for n in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        a = float64(0.0)
        for p in range(t, L, nt):
            if C == 3:
                a += 0.299 * x[n, 0, p] + 0.587 * x[n, 1, p] + 0.114 * x[n, 2, p]
            else:
                g = float64(0.0)
                for c in range(C):
                    g += x[n, c, p]
                a += g / C
        s[t] = a
        tree_sum(s, t, nt)
        m = s[0] / L
        f = factors[n]
        for q in range(t, C * L, nt):
            c, p = q // L, q % L
            out[n, c, p] = _unit((x[n, c, p] - m) * f + m)
        cuda.syncthreads()  # s is reused by the next image


@cuda.jit
def _saturation_k(x, factors, out):
    N, C, L = x.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, N * L, step):
        n, p = t // L, t % L
        g = 0.299 * x[n, 0, p] + 0.587 * x[n, 1, p] + 0.114 * x[n, 2, p]
        f = factors[n]
        for c in range(3):
            out[n, c, p] = _unit((x[n, c, p] - g) * f + g)


@cuda.jit
def _gamma_k(x, gammas, out):
    L = x.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        n, k = t // L, t % L
        out[n, k] = _unit(x[n, k]) ** gammas[n]


@cuda.jit
def _noise32_k(states, x, stds, out):
    L = x.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        n, k = t // L, t % L
        out[n, k] = x[n, k] + xoroshiro128p_normal_float32(states, start) * stds[n]


@cuda.jit
def _noise64_k(states, x, stds, out):
    L = x.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        n, k = t // L, t % L
        out[n, k] = x[n, k] + xoroshiro128p_normal_float64(states, start) * stds[n]


@cuda.jit
def _mix_k(x, lam, partner, out):
    L = x.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        n, k = t // L, t % L
        a = lam[n]
        out[n, k] = a * x[n, k] + (1 - a) * x[partner[n], k]


@cuda.jit
def _mask_bands_k(x, lost, axis, values, out):
    N, C, H, W = x.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for t in range(start, x.size, step):
        j = t % W
        i = (t // W) % H
        c = (t // (W * H)) % C
        n = t // (W * H * C)
        k = i if axis == 2 else j
        out[n, c, i, j] = values[n, c] if lost[n, k] else x[n, c, i, j]


def _rows(a):
    """a (N, ...) as an (N, L) view (C-contiguous, no copy)."""
    return a.reshape(a.shape[0], a.size // a.shape[0])


def _planes(a):
    """a (N, C, H, W) as an (N, C, H*W) view."""
    N, C, H, W = a.shape
    return a.reshape(N, C, H * W)


def warp_affine(x, mats, active, fill, out):
    """out (N, C, H, W) = x sampled bilinearly at mats[n] @ (j, i, 1); copies inactive samples.

    mats (N, 2, 3) float64, output -> input coordinates; active (N,) bool;
    fill in x's dtype. out must not be x. Returns out.
    """
    N, C, H, W = x.shape
    if out.size:
        _warp_affine_k[grid(N * H * W)](x, mats, active, fill, out)
    return out


def fill_boxes(x, boxes, values, out):
    """out = x with out[n, c, y0:y1, x0:x1] = values[n, c]; returns out."""
    if out.size:
        _fill_boxes_k[grid(out.size)](x, boxes, values, out)
    return out


def paste_boxes(x, boxes, src, src_index, out):
    """out = x with out[n, :, box_n] = src[src_index[n], :, box_n]; out may be x but not src.
    Returns out."""
    if out.size:
        _paste_boxes_k[grid(out.size)](x, boxes, src, src_index, out)
    return out


def fill_boxes_uniform(x, boxes, rng, out):
    """out = x with every value in box_n of sample n drawn from U[0, 1) (one seed from rng,
    generated on the device); returns out."""
    if out.size:
        states, blocks, threads = generators(rng, out.size)
        kernel = _fill_boxes_uniform32_k if out.dtype == np.float32 else _fill_boxes_uniform64_k
        kernel[blocks, threads](states, x, boxes, out)
    return out


def shift_hue(x, shifts, active, out):
    """out = RGB images x (N, 3, H, W) clipped to [0, 1], hue rotated by shifts[n] turns
    where active[n]; returns out."""
    N, C, H, W = x.shape
    if out.size:
        _shift_hue_k[grid(N * H * W)](x, shifts, active, out)
    return out


def adjust_brightness(x, factors, out):
    """out = clip(x * factors[n], 0, 1) for x (N, ...); returns out."""
    if out.size:
        _brightness_k[grid(out.size)](_rows(x), factors, _rows(out))
    return out


def adjust_contrast(x, factors, out):
    """out = clip(m + (x - m) * factors[n], 0, 1), m the mean grey level of image n;
    returns out."""
    if out.size:
        N, C, H, W = x.shape
        blocks = N if N < _MAX_IMAGE_BLOCKS else _MAX_IMAGE_BLOCKS
        _contrast_k[blocks, block_threads(H * W)](_planes(x), factors, _planes(out))
    return out


def adjust_saturation(x, factors, out):
    """out = clip(g + (x - g) * factors[n], 0, 1), g the luma of each pixel; returns out."""
    if out.size:
        N, C, H, W = x.shape
        _saturation_k[grid(N * H * W)](_planes(x), factors, _planes(out))
    return out


def adjust_gamma(x, gammas, out):
    """out = clip(x, 0, 1) ** gammas[n] for x (N, ...); returns out."""
    if out.size:
        _gamma_k[grid(out.size)](_rows(x), gammas, _rows(out))
    return out


def add_gaussian_noise(x, rng, stds, out):
    """out = x + stds[n] * e for x (N, ...), e ~ N(0, 1) generated on the device in x's
    dtype (one seed from rng); returns out."""
    if out.size:
        states, blocks, threads = generators(rng, out.size)
        kernel = _noise32_k if out.dtype == np.float32 else _noise64_k
        kernel[blocks, threads](states, _rows(x), stds, _rows(out))
    return out


def mix_samples(x, lam, partner, out):
    """out[n] = lam[n] * x[n] + (1 - lam[n]) * x[partner[n]]; out must not be x. Returns out."""
    if out.size:
        _mix_k[grid(out.size)](_rows(x), lam, partner, _rows(out))
    return out


def mask_bands(x, lost, axis, values, out):
    """out = x with the rows (axis 2) or columns (axis 3) k where lost[n, k] set to
    values[n, c]; returns out."""
    if out.size:
        _mask_bands_k[grid(out.size)](x, lost, axis, values, out)
    return out


__all__ = ["warp_affine", "fill_boxes", "paste_boxes", "fill_boxes_uniform", "shift_hue",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_gamma",
           "add_gaussian_noise", "mix_samples", "mask_bands"]
