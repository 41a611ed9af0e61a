"""Slow, obvious NumPy versions of the kernels: the oracles of the tests.

Written for clarity, not speed; nothing here is called by layers. Shapes and
conventions are those of the fast kernels (NCHW; max pooling pads with -inf;
average pooling divides by the full window).
"""
import numpy as np


def pad_nchw(x, ph, pw, value=0.0):
    """x (N, C, H, W) padded by ph rows and pw columns of value on each side."""
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def out_hw(H, W, kh, kw, sh, sw, ph, pw):
    """(OH, OW) of a kh x kw window with strides (sh, sw) and padding (ph, pw) on H x W."""
    return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def im2col(x, kh, kw, sh=1, sw=1, ph=0, pw=0):
    """The book's util.im2col: a Python loop over the KH*KW kernel positions."""
    N, C, H, W = x.shape
    oh, ow = out_hw(H, W, kh, kw, sh, sw, ph, pw)
    img = pad_nchw(x, ph, pw)
    col = np.zeros((N, C, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            col[:, :, i, j] = img[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * oh * ow, -1)


def col2im(col, x_shape, kh, kw, sh=1, sw=1, ph=0, pw=0):
    """The book's util.col2im (overlaps add up)."""
    N, C, H, W = x_shape
    oh, ow = out_hw(H, W, kh, kw, sh, sw, ph, pw)
    col = col.reshape(N, oh, ow, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * ph + sh - 1, W + 2 * pw + sw - 1), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            img[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += col[:, :, i, j]
    return img[:, :, ph:H + ph, pw:W + pw]


def conv2d_forward(x, W, b, sh=1, sw=1, ph=0, pw=0):
    """Direct convolution: one einsum per kernel position, float64 accumulation."""
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    oh, ow = out_hw(H, Wd, kh, kw, sh, sw, ph, pw)
    img = pad_nchw(x.astype(np.float64), ph, pw)
    y = np.zeros((N, F, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = img[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
            y += np.einsum("nchw,fc->nfhw", patch, W[:, :, i, j].astype(np.float64))
    if b is not None:
        y += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return y


def conv2d_backward(dout, x, W, sh=1, sw=1, ph=0, pw=0):
    """(dx, dW, db) of the direct convolution, float64."""
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    oh, ow = out_hw(H, Wd, kh, kw, sh, sw, ph, pw)
    dout = dout.astype(np.float64)
    img = pad_nchw(x.astype(np.float64), ph, pw)
    dimg = np.zeros_like(img)
    dW = np.zeros((F, C, kh, kw))
    for i in range(kh):
        for j in range(kw):
            sl = (slice(None), slice(None), slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw))
            dW[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, img[sl])
            dimg[sl] += np.einsum("nfhw,fc->nchw", dout, W[:, :, i, j].astype(np.float64))
    dx = dimg[:, :, ph:ph + H, pw:pw + Wd]
    return dx, dW, dout.sum(axis=(0, 2, 3))


def _windows(x, kh, kw, sh, sw, ph, pw, fill):
    """All windows as an array (N, C, OH, OW, KH*KW), padding filled with fill."""
    N, C, H, W = x.shape
    oh, ow = out_hw(H, W, kh, kw, sh, sw, ph, pw)
    img = pad_nchw(x.astype(np.float64), ph, pw, fill)
    win = np.empty((N, C, oh, ow, kh * kw))
    for i in range(kh):
        for j in range(kw):
            win[..., i * kw + j] = img[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    return win


def maxpool2d_forward(x, kh, kw, sh, sw, ph=0, pw=0):
    """Each window's maximum, padding as -inf. x (N, C, H, W) -> (N, C, OH, OW)."""
    return _windows(x, kh, kw, sh, sw, ph, pw, -np.inf).max(axis=-1)


def maxpool2d_backward(dout, x, kh, kw, sh, sw, ph=0, pw=0):
    """Gradient routed to the first maximum of each window (ties: lowest index)."""
    N, C, H, W = x.shape
    win = _windows(x, kh, kw, sh, sw, ph, pw, -np.inf)
    arg = win.argmax(axis=-1)
    dimg = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    oh, ow = arg.shape[2:]
    for a in range(oh):
        for b in range(ow):
            i, j = np.divmod(arg[:, :, a, b], kw)
            n, c = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
            np.add.at(dimg, (n, c, a * sh + i, b * sw + j), dout[:, :, a, b])
    return dimg[:, :, ph:ph + H, pw:pw + W]


def avgpool2d_forward(x, kh, kw, sh, sw, ph=0, pw=0):
    """Each window's sum / (kh * kw), zero padding included. x (N, C, H, W) -> (N, C, OH, OW)."""
    return _windows(x, kh, kw, sh, sw, ph, pw, 0.0).sum(axis=-1) / (kh * kw)


def avgpool2d_backward(dout, x_shape, kh, kw, sh, sw, ph=0, pw=0):
    """dx of shape x_shape: dout / (kh * kw) spread over each window (padding dropped)."""
    N, C, H, W = x_shape
    oh, ow = dout.shape[2:]
    dimg = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            dimg[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += dout / (kh * kw)
    return dimg[:, :, ph:ph + H, pw:pw + W]


def _bn_axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _bn_shape(x, v):
    return v.reshape(1, -1) if x.ndim == 2 else v.reshape(1, -1, 1, 1)


def batchnorm_forward(x, gamma, beta, eps):
    """The book's BatchNormalization forward, per feature (N, D) or per channel (N, C, H, W).

    Returns (y, xc, xn, std, mean, var), computed in x's dtype; var is biased.
    """
    axes = _bn_axes(x)
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = (xc ** 2).mean(axis=axes, keepdims=True)
    std = np.sqrt(var + eps)
    xn = xc / std
    y = _bn_shape(x, gamma) * xn + _bn_shape(x, beta)
    return y, xc, xn, std, mu.reshape(-1), var.reshape(-1)


def batchnorm_backward(dout, gamma, xc, xn, std):
    """The book's BatchNormalization backward: (dx, dgamma, dbeta)."""
    axes = _bn_axes(dout)
    m = dout.size // dout.shape[1]
    dbeta = dout.sum(axis=axes)
    dgamma = (xn * dout).sum(axis=axes)
    dxn = _bn_shape(dout, gamma) * dout
    dxc = dxn / std
    dstd = -((dxn * xc) / (std * std)).sum(axis=axes, keepdims=True)
    dvar = 0.5 * dstd / std
    dxc += (2.0 / m) * xc * dvar
    dmu = dxc.sum(axis=axes, keepdims=True)
    dx = dxc - dmu / m
    return dx, dgamma, dbeta


def warp_affine(x, mats, fill=0.0):
    """Bilinear resampling of x (N, C, H, W) at mats[n] @ (j, i, 1), outside pixels = fill.

    The four neighbours of every sample point are gathered from a copy of x
    padded by 2 pixels of fill on each side (points further out are all fill).
    """
    N, C, H, W = x.shape
    out = np.empty(x.shape, dtype=np.float64)
    pad = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=fill)
    ii, jj = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    for n in range(N):
        m = mats[n]
        sx = m[0, 0] * jj + m[0, 1] * ii + m[0, 2]
        sy = m[1, 0] * jj + m[1, 1] * ii + m[1, 2]
        inside = (sx > -1) & (sx < W) & (sy > -1) & (sy < H)
        sx, sy = np.where(inside, sx, 0.0), np.where(inside, sy, 0.0)
        x0, y0 = np.floor(sx), np.floor(sy)
        wx, wy = sx - x0, sy - y0
        x0, y0 = x0.astype(int) + 2, y0.astype(int) + 2
        v = ((1 - wx) * (1 - wy) * pad[n][:, y0, x0] + wx * (1 - wy) * pad[n][:, y0, x0 + 1]
             + (1 - wx) * wy * pad[n][:, y0 + 1, x0] + wx * wy * pad[n][:, y0 + 1, x0 + 1])
        out[n] = np.where(inside, v, fill)
    return out


def shift_hue(x, shifts):
    """Hue rotation of RGB images x (N, 3, H, W) by shifts[n] turns, pixel by pixel via colorsys."""
    import colorsys
    out = x.astype(np.float64)
    N, _, H, W = x.shape
    for n in range(N):
        for i in range(H):
            for j in range(W):
                h, s, v = colorsys.rgb_to_hsv(*out[n, :, i, j])
                out[n, :, i, j] = colorsys.hsv_to_rgb((h + shifts[n]) % 1.0, s, v)
    return out


def pack_bits(x):
    """Sign bits (x >= 0) of the last axis as little-endian uint64 words, tail zero."""
    bits = np.asarray(x) >= 0
    n = bits.shape[-1]
    words = -(-n // 64)
    padded = np.zeros(bits.shape[:-1] + (64 * words,), dtype=np.uint64)
    padded[..., :n] = bits
    place = np.uint64(1) << np.arange(64, dtype=np.uint64)
    return (padded.reshape(*bits.shape[:-1], words, 64) * place).sum(axis=-1, dtype=np.uint64)


def unpack_bits(p, n):
    """+-1 float64 values of the first n bits of each packed row."""
    bits = (p[..., :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    return np.where(bits.reshape(*p.shape[:-1], -1)[..., :n] == 1, 1.0, -1.0)


def binary_matmul(a, b, n):
    """The +-1 dot products of packed rows, as a float matrix product (int64)."""
    return (unpack_bits(a, n) @ unpack_bits(b, n).T).astype(np.int64)


def binary_conv2d(x, w, sh=1, sw=1, ph=0, pw=0):
    """Zero-padded convolution of sign(x) and sign(w) (int64)."""
    def sign(v):
        return np.where(v >= 0, 1.0, -1.0)
    return np.rint(conv2d_forward(sign(x), sign(w), None, sh, sw, ph, pw)).astype(np.int64)
