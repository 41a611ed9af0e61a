"""Public array operations: im2col and col2im in the book's layout.

    col = im2col(x, kh, kw, stride, pad)       # (N*OH*OW, C*KH*KW)
    dx  = col2im(col, x.shape, kh, kw, stride, pad)

col2im is the exact adjoint of im2col: <im2col(x), c> == <x, col2im(c)>,
so windows that overlap (stride < kernel) add up. stride and pad take an int
or an (h, w) pair. Both run where their input lives (``kernels_for``): a
device array gives a device array.
"""
from cdl._checks import check_float, check_int, conv_output_hw, pair
from cdl.backend import kernels_for


def _geometry(who, x_shape, kh, kw, stride, pad):
    kh, kw = pair(who, "kernel size", (kh, kw), 1)
    sh, sw = pair(who, "stride", stride, 1)
    ph, pw = pair(who, "pad", pad, 0)
    oh, ow = conv_output_hw(who, x_shape[2:], (kh, kw), (sh, sw), (ph, pw))
    return kh, kw, sh, sw, ph, pw, oh, ow


def im2col(x, kh, kw, stride=1, pad=0):
    """Unfold sliding windows. x (N, C, H, W) -> col (N*OH*OW, C*KH*KW).

    kh x kw windows (KH x KW), stride and zero padding pad (an int or an (h, w) pair);
    the layout of the book's ``util.im2col``.
    """
    x = check_float("im2col", x, ndim=4, layout="(N, C, H, W)")
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry("im2col", x.shape, kh, kw, stride, pad)
    K = kernels_for(x)
    out = K.empty((x.shape[0] * oh * ow, x.shape[1] * kh * kw), x.dtype)
    return K.im2col_rows(x, kh, kw, sh, sw, ph, pw, oh, ow, out)


def col2im(col, x_shape, kh, kw, stride=1, pad=0):
    """Fold columns back, summing overlaps. col (N*OH*OW, C*KH*KW) -> (N, C, H, W).

    The adjoint of ``im2col`` for an input of shape x_shape with the same kh, kw,
    stride and pad; the padding's share is dropped.
    """
    col = check_float("col2im", col, ndim=2, what="col")
    if not hasattr(x_shape, "__len__") or len(x_shape) != 4:
        raise ValueError(f"col2im: x_shape must be a positive (N, C, H, W), got {x_shape!r}")
    # each size is refused, not truncated, when it is not an int (1.7 is no shape)
    x_shape = tuple(check_int("col2im", f"x_shape[{i}]", s, 1)
                    for i, s in enumerate(x_shape))
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry("col2im", x_shape, kh, kw, stride, pad)
    N, C = x_shape[:2]
    want = (N * oh * ow, C * kh * kw)
    if col.shape != want:
        raise ValueError(f"col2im: col of shape {col.shape} does not match x_shape {x_shape} "
                         f"with a {kh}x{kw} kernel, stride {sh},{sw}, pad {ph},{pw}: "
                         f"expected {want}")
    K = kernels_for(col)
    return K.col2im_rows(col, kh, kw, sh, sw, ph, pw, oh, ow, K.empty(x_shape, col.dtype))


__all__ = ["im2col", "col2im"]
