"""Pooling layers: max, average and global average over NCHW."""
from cdl._checks import check_float, conv_output_hw, pair
from cdl.backend import kernels_for
from cdl.layers.base import Layer


class _Pool2D(Layer):
    """Shared geometry of the windowed pools: pool_size, stride (default pool_size), pad."""

    def __init__(self, pool_size, stride=None, pad=0):
        super().__init__()
        who = type(self).__name__
        self.pool_size = pair(who, "pool_size", pool_size, 1)
        self.stride = pair(who, "stride", self.pool_size if stride is None else stride, 1)
        self.pad = pair(who, "pad", pad, 0)
        if any(p > k // 2 for p, k in zip(self.pad, self.pool_size)):
            raise ValueError(f"{who}: pad {self.pad} must be at most half the pool size "
                             f"{self.pool_size}, or some windows would hold only padding")
        self._x_shape = None

    def config(self):
        return {"pool_size": list(self.pool_size), "stride": list(self.stride),
                "pad": list(self.pad)}

    def _prepare(self, x):
        """(K, x, y): the kernels for x, x validated, y allocated (N, C, OH, OW) in x's dtype."""
        x = check_float(self.name, x, ndim=4, layout="(N, C, H, W)")
        oh, ow = conv_output_hw(f"{self.name}{self.pool_size}", x.shape[2:],
                                self.pool_size, self.stride, self.pad)
        K = kernels_for(x)
        return K, x, K.empty((*x.shape[:2], oh, ow), x.dtype)

    def _geometry(self):
        return (*self.pool_size, *self.stride, *self.pad)


class MaxPool2D(_Pool2D):
    """Max pooling. x (N, C, H, W) -> y (N, C, OH, OW); padding acts as -inf.

    pool_size is the window (KH, KW), stride its step (default pool_size:
    windows that do not overlap) and pad the padding on each side (at most
    half the window); each takes an int or an (h, w) pair.
    """

    def __init__(self, pool_size, stride=None, pad=0):
        super().__init__(pool_size, stride, pad)
        self._x = self._y = None

    def forward(self, x, train=True):
        K, x, y = self._prepare(x)
        K.maxpool2d_forward(x, *self._geometry(), y)
        if train:  # backward finds each window's maximum again: y says which value it is
            self._x, self._y = x, y
        return y

    def backward(self, dout):
        x = self._cached(self._x)
        dout = self._check_dout(dout, self._y.shape)
        K = kernels_for(dout, x)
        return K.maxpool2d_backward(dout, x, self._y, *self._geometry(),
                                    K.empty(x.shape, dout.dtype))


class AvgPool2D(_Pool2D):
    """Average pooling. x (N, C, H, W) -> y (N, C, OH, OW); divides by the full window.

    pool_size is the window (KH, KW), stride its step (default pool_size) and
    pad the zero padding on each side (at most half the window), which counts
    in the average as PyTorch's default does; each takes an int or an (h, w)
    pair.
    """

    def forward(self, x, train=True):
        K, x, y = self._prepare(x)
        K.avgpool2d_forward(x, *self._geometry(), y)
        if train:
            self._x_shape, self._y_shape = x.shape, y.shape
        return y

    def backward(self, dout):
        x_shape = self._cached(self._x_shape)
        dout = self._check_dout(dout, self._y_shape)
        K = kernels_for(dout)
        return K.avgpool2d_backward(dout, *self._geometry(), K.empty(x_shape, dout.dtype))


class GlobalAvgPool2D(Layer):
    """Global average pooling. x (N, C, H, W) -> y (N, C), the mean of each plane."""

    def __init__(self):
        super().__init__()
        self._x_shape = None

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=4, layout="(N, C, H, W)")
        self._x_shape = x.shape
        K = kernels_for(x)
        return K.global_avgpool2d_forward(x, K.empty(x.shape[:2], x.dtype))

    def backward(self, dout):
        x_shape = self._cached(self._x_shape)
        dout = self._check_dout(dout, x_shape[:2])
        K = kernels_for(dout)
        return K.global_avgpool2d_backward(dout, K.empty(x_shape, dout.dtype))
