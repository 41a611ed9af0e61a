"""Batch normalization (Ioffe & Szegedy 2015)."""
import numpy as np

from cdl._checks import check_float, is_device_array, positive_int
from cdl.backend import kernels_for
from cdl.layers.base import Layer, cast, compute_dtype


class BatchNorm(Layer):
    """Batch normalization. x (N, D) per feature, or (N, C, H, W) per channel -> y, same shape.

    num_features is D (or C); momentum and eps are those of the formulas
    below; dtype is the dtype of gamma, beta and the running statistics.

    Training (``train=True``): with the batch's per-feature mean and biased
    variance over the m = N (or N*H*W) values of each feature,

        y = gamma * (x - mean) / sqrt(var + eps) + beta      (gamma = 1, beta = 0 at init)

    and the running statistics move towards the batch's:
    running = momentum * running + (1 - momentum) * batch. The running
    variance takes the *unbiased* batch variance var * m / (m - 1), as in
    the paper's inference network (Algorithm 2, step 10) and PyTorch: it
    estimates the population variance that inference divides by, and the
    biased one would shrink it by (m - 1)/m on every small batch.

    Inference (``train=False``) uses the running statistics and updates
    nothing. ``trainable = False`` freezes the layer for transfer learning:
    gamma, beta and the running statistics stay put and the layer normalises
    with the running statistics in both modes (so a frozen layer computes the
    same function in training as in inference; Keras behaves the same way).

    Training needs at least two values per feature: an (N, D) batch of one,
    or an image batch of one 1x1 image, has a zero variance and no
    information, so it raises ValueError (PyTorch refuses it likewise). One
    image of several pixels is fine (statistics over its pixels).

    Forward and backward are fused kernels over NCHW (cdl.kernels.norm, or
    their CUDA twins when x lives on the GPU), float32 or float64 by the
    input; every array the layer uses is allocated on x's device.
    ``running_mean`` and ``running_var`` live in ``buffers`` so models save
    and load them.

    ``comm`` (None by default; ``cdl.distributed.sync_batchnorm`` sets it): in
    data-parallel training, normalize with the statistics of the global batch,
    every rank's samples (SyncBatchNorm): the per-channel counts, means and
    variances are combined over the ranks (exactly, Chan et al. 1979), and
    backward reduces sum(dout) and sum(dout * xhat) likewise, each rank
    weighted by its share of the global batch as the gradient average weights
    it. A runtime setting, not saved with the model.
    """

    comm = None

    def __init__(self, num_features, momentum=0.9, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.num_features = positive_int("BatchNorm", "num_features", num_features)
        if isinstance(momentum, bool) or not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1], got {momentum!r}")
        if isinstance(eps, bool) or not float(eps) > 0.0 or not np.isfinite(float(eps)):
            raise ValueError(f"BatchNorm: eps must be a positive number, got {eps!r}")
        self.momentum, self.eps = float(momentum), float(eps)
        D = self.num_features
        self.params["gamma"] = np.ones(D, dtype=dtype)
        self.params["beta"] = np.zeros(D, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(D, dtype=dtype)
        self.buffers["running_var"] = np.ones(D, dtype=dtype)
        self._zero_grads()
        self._x = None

    def config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}

    @property
    def running_mean(self):
        """Running per-feature mean (D,), ``buffers["running_mean"]``; assigning copies
        into that buffer (same shape, on its device)."""
        return self.buffers["running_mean"]

    @running_mean.setter
    def running_mean(self, value):
        self._set_buffer("running_mean", value)

    @property
    def running_var(self):
        """Running per-feature variance (D,), ``buffers["running_var"]``; assigning copies
        into that buffer (same shape, on its device)."""
        return self.buffers["running_var"]

    @running_var.setter
    def running_var(self, value):
        self._set_buffer("running_var", value)

    def _set_buffer(self, key, value):
        buf = self.buffers[key]
        if not is_device_array(buf) and not is_device_array(value):
            value = np.asarray(value)
        if value.shape != (self.num_features,):
            raise ValueError(f"BatchNorm({self.num_features}): {key} must have shape "
                             f"({self.num_features},), got {value.shape}")
        if is_device_array(buf) != is_device_array(value):
            from cdl import cuda
            value = cuda.to_device(value) if is_device_array(buf) else cuda.to_host(value)
        kernels_for(buf).copy(value, buf)

    def _describe(self):
        return f"BatchNorm({self.num_features})"

    def forward(self, x, train=True):
        x = check_float(self.name, x, ndim=(2, 4), layout="(N, D) or (N, C, H, W)")
        if x.shape[1] != self.num_features:
            what = "features" if x.ndim == 2 else "channels"
            raise ValueError(f"{self._describe()}: input of shape {x.shape} has {x.shape[1]} "
                             f"{what}, expected {self.num_features}")
        gamma, beta = self.params["gamma"], self.params["beta"]
        K = kernels_for(x, gamma, beta, self.running_mean, self.running_var)
        dtype = compute_dtype(x, gamma)
        C = self.num_features
        x3 = cast(K, x, dtype).reshape(x.shape[0], C, -1)
        gamma, beta = cast(K, gamma, dtype), cast(K, beta, dtype)
        y = K.empty(x3.shape, dtype)
        coef = K.empty((5, C), dtype)
        inv_std = K.empty(C, np.float64)
        batch_stats = train and self.trainable
        synced = batch_stats and self.comm is not None and self.comm.size > 1
        if batch_stats:
            m = x3.shape[0] * x3.shape[2]
            if m < 2:
                raise ValueError(f"{self._describe()}: training needs at least 2 values per "
                                 f"feature to estimate a variance, got input of shape "
                                 f"{x.shape}; use a larger batch or train=False")
            mean, var = K.empty(C, np.float64), K.empty(C, np.float64)
            K.batchnorm_forward(x3, gamma, beta, self.eps, y, mean, var, coef)
            if synced:  # the global batch's statistics replace this rank's; y again
                self._m = (m, self._global_stats(m, mean, var))
                m = self._m[1]
            K.batchnorm_inv_std(var, self.eps, inv_std)
            if synced:
                K.batchnorm_apply(x3, mean, inv_std, gamma, beta, y, coef)
            K.batchnorm_running_update(mean, var, self.momentum, m / (m - 1),
                                       self.running_mean, self.running_var)
        else:
            mean = K.copy(self.running_mean, K.empty(C, np.float64))
            K.batchnorm_inv_std(self.running_var, self.eps, inv_std)
            K.batchnorm_apply(x3, mean, inv_std, gamma, beta, y, coef)
        if train:
            self._x, self._mean, self._inv_std = x3, mean, inv_std
            self._batch_stats, self._x_shape, self._synced = batch_stats, x.shape, synced
        return y.reshape(x.shape)

    def backward(self, dout):
        x3 = self._cached(self._x)
        dout = self._check_dout(dout, self._x_shape)
        gamma = self.params["gamma"]
        K = kernels_for(dout, x3, gamma)
        C = self.num_features
        dx = K.empty(x3.shape, x3.dtype)
        dgamma, dbeta = K.empty(C, np.float64), K.empty(C, np.float64)
        coef = K.empty((5, C), x3.dtype)
        synced = self._synced
        K.batchnorm_backward(cast(K, dout, x3.dtype).reshape(x3.shape), x3, self._mean,
                             self._inv_std, cast(K, gamma, x3.dtype),
                             self._batch_stats and not synced, dx, dgamma, dbeta, coef)
        if synced:
            self._global_backward(K, x3, gamma, dgamma, dbeta, dx, coef)
        self.grads["gamma"] = K.copy(dgamma, K.empty(C, gamma.dtype))
        self.grads["beta"] = K.copy(dbeta, K.empty(C, gamma.dtype))
        return dx.reshape(self._x_shape)

    def _global_stats(self, m, mean, var):
        """This rank's (C,) float64 mean and biased var of m values per channel -> those of
        all ranks' values, in place; returns the total count M."""
        from cdl import cuda
        mu, v = cuda.to_host(mean), cuda.to_host(var)
        first = self.comm.allreduce_sum(np.concatenate([[float(m)], m * mu]))
        M = first[0]
        g_mean = first[1:] / M
        g_var = self.comm.allreduce_sum(m * (v + (mu - g_mean) ** 2)) / M
        _put(mean, g_mean)
        _put(var, g_var)
        return M

    def _global_backward(self, K, x3, gamma, dgamma, dbeta, dx, coef):
        """dx (computed as gamma * r * dout) += gamma * r * (-S1 - xhat * S2) / m, with S1,
        S2 the sums of dout and dout * xhat over the ranks, each rank's weighted by its
        share m / M of the global batch (the gradient average weights its gradients so)."""
        from cdl import cuda
        m, M = self._m
        C = self.num_features
        sums = self.comm.allreduce_sum((m / M) * np.concatenate([cuda.to_host(dbeta),
                                                                 cuda.to_host(dgamma)]))
        a = cuda.to_host(gamma).astype(np.float64) * cuda.to_host(self._inv_std)
        g2 = _put(K.empty(C, x3.dtype), -a * sums[C:] / m)
        b2 = _put(K.empty(C, x3.dtype), -a * sums[:C] / m)
        corr = K.empty(x3.shape, x3.dtype)
        K.batchnorm_apply(x3, self._mean, self._inv_std, g2, b2, corr, coef)
        K.add(dx, corr, dx)


def _put(dst, host):
    """host values into dst (a host or device array); returns dst."""
    if is_device_array(dst):
        dst.copy_to_device(np.ascontiguousarray(host, dtype=dst.dtype))
    else:
        dst[...] = host
    return dst
