"""Data-augmentation kernels over whole batches (N, C, H, W), or (N, ...) where a kernel says so.

Callers (cdl.data.augment) draw every per-sample parameter (matrices, boxes,
factors, shifts, partners) from a seeded NumPy generator on the host and pass
small arrays; the two kernels that need noise of the batch's size
(fill_boxes_uniform, add_gaussian_noise) take the generator itself, as the
dropout kernels do: the CPU kernel draws from it, the CUDA twin draws a seed.
Each kernel writes ``out`` and returns it; ``out`` may be ``x`` (in place)
except where a kernel says otherwise. Per-sample factors come in x's dtype.

Warps and hue shifts split the batch over cdl's worker pool
(cdl.kernels.parallel.run_slices, as the conv kernels do; small batches stay
in the calling thread); box fills touch few pixels and run serially; the
photometric kernels are NumPy expressions. The CUDA twins are in
cdl.cuda.augment.

Geometry. Pixel (i, j) (row, column) sits at the point (x, y) = (j, i), so
pixel centres are integers and the image spans [-0.5, W - 0.5]. A warp maps
each *output* pixel to the input point it samples: (sx, sy) = M @ (j, i, 1)
with M a 2x3 matrix per sample, and reads x there by bilinear interpolation.
Input pixels outside the image read as ``fill`` (as PyTorch's grid_sample
with zero padding does for fill = 0), so a point half a pixel outside
blends the edge with fill. Integer sample points reproduce pixels exactly
(flips and integer shifts lose nothing).
"""
import math

import numpy as np
from numba import njit

from cdl.kernels.parallel import run_slices

_GRAY = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma, as PIL and torchvision use


def warp_affine(x, mats, active, fill, out):
    """out (N, C, H, W) = x sampled bilinearly at mats[n] @ (j, i, 1); copies inactive samples.

    mats (N, 2, 3) float64, output -> input coordinates; active (N,) bool;
    fill in x's dtype. out must not be x. Returns out.
    """
    run_slices(lambda a, z: _warp_affine(x, mats, active, fill, out, a, z), len(x), work=x.size)
    return out


@njit(nogil=True, cache=True)
def _warp_affine(x, mats, active, fill, out, n0, n1):
    N, C, H, W = x.shape
    for n in range(n0, n1):
        if not active[n]:
            for c in range(C):
                for i in range(H):
                    for j in range(W):
                        out[n, c, i, j] = x[n, c, i, j]
            continue
        a, b, e = mats[n, 0, 0], mats[n, 0, 1], mats[n, 0, 2]
        d, g, f = mats[n, 1, 0], mats[n, 1, 1], mats[n, 1, 2]
        for i in range(H):
            for j in range(W):
                sx = a * j + b * i + e
                sy = d * j + g * i + f
                # also false for NaN: a degenerate point reads as fill, never as memory
                if not (-1.0 < sx < W and -1.0 < sy < H):
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


def fill_boxes(x, boxes, values, out):
    """out = x with out[n, c, y0:y1, x0:x1] = values[n, c]; returns out.

    boxes (N, 4) int64 rows (y0, y1, x0, x1), inside the image (cdl.data.augment
    checks them); values (N, C) in x's dtype.
    """
    if out is not x:
        np.copyto(out, x)
    _fill_boxes(out, boxes, values)
    return out


def paste_boxes(x, boxes, src, src_index, out):
    """out = x with out[n, :, box_n] = src[src_index[n], :, box_n] (CutMix); returns out.

    src (M, C, H, W) like x; src_index (N,) int64. out may be x but not src.
    """
    if out is not x:
        np.copyto(out, x)
    _paste_boxes(out, boxes, src, src_index)
    return out


def fill_boxes_uniform(x, boxes, rng, out):
    """out = x with every value in box_n of sample n drawn from U[0, 1) (random erasing).

    Draws one batch of x's shape and dtype from rng (rng.random), whatever
    the boxes; returns out.
    """
    noise = rng.random(x.shape, dtype=x.dtype)
    return paste_boxes(x, boxes, noise, np.arange(len(x)), out)


@njit(cache=True)
def _fill_boxes(x, boxes, values):
    N, C, H, W = x.shape
    for n in range(N):
        y0, y1, x0, x1 = boxes[n, 0], boxes[n, 1], boxes[n, 2], boxes[n, 3]
        for c in range(C):
            v = values[n, c]
            for i in range(y0, y1):
                for j in range(x0, x1):
                    x[n, c, i, j] = v


@njit(cache=True)
def _paste_boxes(x, boxes, src, src_index):
    N, C, H, W = x.shape
    for n in range(N):
        y0, y1, x0, x1 = boxes[n, 0], boxes[n, 1], boxes[n, 2], boxes[n, 3]
        s = src_index[n]
        for c in range(C):
            for i in range(y0, y1):
                for j in range(x0, x1):
                    x[n, c, i, j] = src[s, c, i, j]


def shift_hue(x, shifts, active, out):
    """out = RGB images x (N, 3, H, W) clipped to [0, 1], hue rotated by shifts[n] turns
    where active[n]; returns out.

    RGB -> HSV -> RGB per pixel (the hexcone model, as colorsys and
    torchvision use); saturation and value are kept. shifts (N,) float64.
    """
    np.clip(x, 0, 1, out=out)
    run_slices(lambda a, z: _shift_hue(out, shifts, active, a, z), len(x), work=x.size)
    return out


@njit(nogil=True, cache=True)
def _shift_hue(x, shifts, active, n0, n1):
    N, C, H, W = x.shape
    for n in range(n0, n1):
        if not active[n]:
            continue
        dh = shifts[n]
        for i in range(H):
            for j in range(W):
                r = x[n, 0, i, j]
                g = x[n, 1, i, j]
                b = x[n, 2, i, j]
                mx = max(r, g, b)
                mn = min(r, g, b)
                delta = mx - mn
                if delta <= 0.0:
                    continue  # grey: no hue to rotate
                if mx == r:
                    h = ((g - b) / delta) / 6.0
                elif mx == g:
                    h = (2.0 + (b - r) / delta) / 6.0
                else:
                    h = (4.0 + (r - g) / delta) / 6.0
                h = (h + dh) % 1.0
                s = delta / mx
                v = mx
                h6 = h * 6.0
                k = int(h6)
                if k > 5:
                    k = 5
                frac = h6 - k
                p = v * (1.0 - s)
                q = v * (1.0 - s * frac)
                t = v * (1.0 - s * (1.0 - frac))
                if k == 0:
                    r, g, b = v, t, p
                elif k == 1:
                    r, g, b = q, v, p
                elif k == 2:
                    r, g, b = p, v, t
                elif k == 3:
                    r, g, b = p, q, v
                elif k == 4:
                    r, g, b = t, p, v
                else:
                    r, g, b = v, p, q
                x[n, 0, i, j] = r
                x[n, 1, i, j] = g
                x[n, 2, i, j] = b


def _per_sample(v, x):
    """Per-sample values v (N,) shaped to broadcast over a batch x (N, ...)."""
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


def _grey(x):
    """Luma (N, 1, H, W) of RGB images; the channel mean of any other channel count."""
    if x.shape[1] == 3:
        return np.einsum("nchw,c->nhw", x, _GRAY.astype(x.dtype))[:, None]
    return x.mean(axis=1, keepdims=True)


def adjust_brightness(x, factors, out):
    """out = clip(x * factors[n], 0, 1) for x (N, ...); returns out."""
    np.multiply(x, _per_sample(factors, x), out=out)
    return np.clip(out, 0, 1, out=out)


def adjust_contrast(x, factors, out):
    """out = clip(m + (x - m) * factors[n], 0, 1), m the mean grey level of image n
    (luma for RGB, else the channel mean) of x (N, C, H, W); returns out."""
    mean = _grey(x).mean(axis=(1, 2, 3), keepdims=True)
    np.subtract(x, mean, out=out)
    out *= _per_sample(factors, x)
    out += mean
    return np.clip(out, 0, 1, out=out)


def adjust_saturation(x, factors, out):
    """out = clip(g + (x - g) * factors[n], 0, 1), g the luma of each pixel of RGB images
    x (N, 3, H, W); returns out."""
    grey = _grey(x)
    np.subtract(x, grey, out=out)
    out *= _per_sample(factors, x)
    out += grey
    return np.clip(out, 0, 1, out=out)


def adjust_gamma(x, gammas, out):
    """out = clip(x, 0, 1) ** gammas[n] for x (N, ...); returns out."""
    np.clip(x, 0, 1, out=out)
    return np.power(out, _per_sample(gammas, x), out=out)


def add_gaussian_noise(x, rng, stds, out):
    """out = x + stds[n] * e for x (N, ...), e ~ N(0, 1) drawn from rng in x's dtype (one
    value per element, also where stds[n] is 0); returns out."""
    noise = rng.standard_normal(x.shape, dtype=x.dtype)
    noise *= _per_sample(stds, x)
    return np.add(x, noise, out=out)


def mix_samples(x, lam, partner, out):
    """out[n] = lam[n] * x[n] + (1 - lam[n]) * x[partner[n]] for x (N, ...) (MixUp);
    partner (N,) int64. out must not be x. Returns out."""
    lx = _per_sample(lam, x)
    return np.add(lx * x, (1 - lx) * x[partner], out=out)


def mask_bands(x, lost, axis, values, out):
    """out = x with the rows (axis 2) or columns (axis 3) k where lost[n, k] set to
    values[n, c] (SpecAugment); x (N, C, F, T), lost (N, F or T) bool; returns out."""
    if out is not x:
        np.copyto(out, x)
    where = lost[:, None, :, None] if axis == 2 else lost[:, None, None, :]
    np.copyto(out, np.broadcast_to(values[:, :, None, None], out.shape),
              where=np.broadcast_to(where, out.shape))
    return out


__all__ = ["warp_affine", "fill_boxes", "paste_boxes", "fill_boxes_uniform", "shift_hue",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_gamma",
           "add_gaussian_noise", "mix_samples", "mask_bands"]
