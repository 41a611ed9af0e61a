"""Data-augmentation kernels over whole NCHW batches, one sample per thread.

Randomness never enters a kernel: callers draw every per-sample parameter
(matrices, boxes, shifts) from a seeded NumPy generator and pass arrays.
Warps and hue shifts split the batch over cdl's worker pool
(cdl.kernels.parallel.run_slices, as the conv kernels do; small batches stay
in the calling thread); box fills touch few pixels and run serially.

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

def warp_affine(x, mats, active, fill, out):
    """out (N, C, H, W) = x sampled bilinearly at mats[n] @ (j, i, 1); copies inactive samples.

    mats (N, 2, 3) float64, output -> input coordinates; active (N,) bool.
    """
    run_slices(lambda a, z: _warp_affine(x, mats, active, fill, out, a, z), len(x), work=x.size)


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


@njit(cache=True)
def fill_boxes(x, boxes, values):
    """x[n, c, y0:y1, x0:x1] = values[n, c] in place; boxes (N, 4) = (y0, y1, x0, x1), clipped."""
    N, C, H, W = x.shape
    for n in range(N):
        y0, y1, x0, x1 = boxes[n, 0], boxes[n, 1], boxes[n, 2], boxes[n, 3]
        for c in range(C):
            v = values[n, c]
            for i in range(y0, y1):
                for j in range(x0, x1):
                    x[n, c, i, j] = v


@njit(cache=True)
def paste_boxes(x, boxes, src, src_index):
    """x[n, :, box] = src[src_index[n], :, box] in place (CutMix, random-valued erasing)."""
    N, C, H, W = x.shape
    for n in range(N):
        y0, y1, x0, x1 = boxes[n, 0], boxes[n, 1], boxes[n, 2], boxes[n, 3]
        s = src_index[n]
        for c in range(C):
            for i in range(y0, y1):
                for j in range(x0, x1):
                    x[n, c, i, j] = src[s, c, i, j]


def shift_hue(x, shifts, active):
    """Rotate the hue of RGB images x (N, 3, H, W) in [0, 1] by shifts[n] turns, in place.

    RGB -> HSV -> RGB per pixel (the hexcone model, as colorsys and
    torchvision use); saturation and value are kept.
    """
    run_slices(lambda a, z: _shift_hue(x, shifts, active, a, z), len(x), work=x.size)


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


def check_boxes(who, boxes, shape):
    """(N, 4) int64 boxes clipped to the image, or ValueError: kernels trust them."""
    boxes = np.ascontiguousarray(boxes, dtype=np.int64)
    N, _, H, W = shape
    if boxes.shape != (N, 4):
        raise ValueError(f"{who}: boxes must have shape ({N}, 4), got {boxes.shape}")
    y0, y1, x0, x1 = boxes.T
    if (y0 < 0).any() or (x0 < 0).any() or (y1 > H).any() or (x1 > W).any() \
            or (y1 < y0).any() or (x1 < x0).any():
        raise ValueError(f"{who}: boxes must satisfy 0 <= y0 <= y1 <= {H}, 0 <= x0 <= x1 <= {W}")
    return boxes


__all__ = ["warp_affine", "fill_boxes", "paste_boxes", "shift_hue", "check_boxes"]
