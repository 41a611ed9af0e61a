"""Loss layers: ``forward(y, t)`` returns a float, ``backward()`` returns dL/dy.

The math is in the loss kernels (``cdl.kernels.loss`` and its CUDA twin;
formulas in its docstring), picked by where the scores live. Targets t may
be NumPy arrays (or lists) or device arrays:

- NumPy targets are checked on the host (shape, dtype, and the values:
  label range, [0, 1] for SigmoidCrossEntropy), then copied to the GPU
  when the scores live there;
- device targets are checked for shape and dtype only (their values would
  have to come back to the host to be read). A device label outside
  [0, C) makes SoftmaxCrossEntropy's loss NaN. Device targets with host
  scores are an error.

Float targets are converted to the scores' dtype. ``backward(dout=1.0)``
scales the gradient by dout.
"""
import numpy as np

from cdl._checks import check_float, device_c_contiguous, is_device_array
from cdl.backend import kernels_for
from cdl.layers.base import cast


class Loss:
    """Base of the losses; ``backward(dout=1.0)`` scales the gradient."""

    def __init__(self):
        self._y = None

    def _cached(self):
        if self._y is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        return self._y

    def config(self):
        """Constructor keyword arguments, JSON-serialisable (none for the losses)."""
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"

    def _targets(self, y, t, check_host):
        """t on y's device, as check_host(who, y, t) accepts it (host) or its shape and dtype
        checks only (device: check_host gets the array and must not read its values)."""
        who = type(self).__name__
        if is_device_array(t):
            if not is_device_array(y):
                raise ValueError(f"{who}: targets are on the GPU but the scores are not; "
                                 f"move them together")
            if not device_c_contiguous(t):
                raise ValueError(f"{who}: targets on the GPU must be C-contiguous")
            return check_host(who, y, t, host=False)
        t = check_host(who, y, np.asarray(t), host=True)
        if is_device_array(y):
            from cdl import cuda
            t = cuda.to_device(np.ascontiguousarray(t))
        return t


class _Probabilities(Loss):
    """A loss whose kernels keep the probabilities for backward: (probs - t) / N."""

    def _forward(self, y, t, kernel):
        K = kernels_for(y, t)
        probs = K.empty_like(y)
        loss = getattr(K, f"{kernel}_forward")(y, t, probs)
        self._y, self._t, self._probs = y, t, probs
        return loss

    def _backward(self, dout, kernel):
        self._cached()
        probs, t = self._probs, self._t
        K = kernels_for(probs, t)
        return _scaled(K, getattr(K, f"{kernel}_backward")(probs, t, K.empty_like(probs)), dout)


def _as_dtype(t, dtype):
    """t in dtype, converted on its own device when it is not already."""
    return cast(kernels_for(t), t, dtype)


def _scaled(K, dx, dout):
    """dx * dout (in place), skipping the pass for the usual dout = 1."""
    dout = float(dout)
    return dx if dout == 1.0 else K.scale(dx, dout, dx)


def _like(who, y, t, what="scores"):
    """Check that t has y's shape and holds numbers (the float targets of every loss)."""
    if t.shape != y.shape:
        raise ValueError(f"{who}: targets of shape {t.shape} do not match {what} of shape "
                         f"{y.shape}")
    if t.dtype.kind not in "biuf":
        raise ValueError(f"{who}: targets must be numbers, got dtype {t.dtype}")


class SoftmaxCrossEntropy(_Probabilities):
    """Softmax + cross-entropy, mean over the batch. y (N, K) scores; t labels or targets.

    t is either integer labels (N,) in [0, K), or one-hot / soft targets (N, K)
    (rows summing to 1, as MixUp and CutMix produce). With log-softmax
    computed by log-sum-exp, L = -mean_n sum_k t_nk (y_nk - max_n - log sum_j
    exp(y_nj - max_n)): exact and finite for any finite scores.
    Backward: dL/dy = (softmax(y) - t) / N.
    """

    def forward(self, y, t):
        """The loss (a float) of scores y (N, K) for labels (N,) or targets (N, K) t."""
        y = check_float("SoftmaxCrossEntropy", y, ndim=2, layout="(N, classes)", what="scores")
        return self._forward(y, self._targets(y, t, _ce_targets), "softmax_cross_entropy")

    def backward(self, dout=1.0):
        """dL/dy = dout * (softmax(y) - t) / N, of y's shape, for the last forward."""
        return self._backward(dout, "softmax_cross_entropy")


def _ce_targets(who, y, t, host):
    N, K = y.shape
    if t.ndim == 1:
        if t.dtype.kind not in "iu":
            raise ValueError(f"{who}: 1-D labels must be integers, got "
                             f"{t.dtype}; pass one-hot or soft targets as (N, K) floats")
        if t.shape[0] != N:
            raise ValueError(f"{who}: {t.shape[0]} labels for {N} samples "
                             f"(scores {y.shape}, labels {t.shape})")
        if host and t.size and (t.min() < 0 or t.max() >= K):
            raise ValueError(f"{who}: labels must be in [0, {K}), "
                             f"got range [{t.min()}, {t.max()}]")
        return t
    if t.ndim == 2:
        _like(who, y, t)
        return _as_dtype(t, y.dtype)
    raise ValueError(f"{who}: targets must be (N,) labels or (N, K) "
                     f"probabilities, got shape {t.shape}")


class SigmoidCrossEntropy(_Probabilities):
    """Sigmoid + binary cross-entropy on logits: y scores of any shape (N, ...), t of y's shape.

    t holds 0/1 labels or probabilities in [0, 1], one per score (multi-label
    classification; (N,) or (N, 1) scores for a binary task). Each score's
    term is -[t log p + (1 - t) log(1 - p)] with p = sigmoid(y), evaluated as
    max(y, 0) - y t + log(1 + exp(-|y|)), finite for any finite score. The
    loss sums the terms of each sample and averages over the batch:
    L = 1/N sum_n sum_k term_nk, which is PyTorch's
    ``BCEWithLogitsLoss(reduction="sum")(y, t) / N`` (equal to its default
    reduction="mean" when each sample has one score). Backward:
    dL/dy = (sigmoid(y) - t) / N.
    """

    def forward(self, y, t):
        """The loss (a float) of scores y for targets t in [0, 1] of y's shape."""
        y = check_float("SigmoidCrossEntropy", y, ndim=range(1, 8), what="scores")
        return self._forward(y, self._targets(y, t, _bce_targets), "sigmoid_cross_entropy")

    def backward(self, dout=1.0):
        """dL/dy = dout * (sigmoid(y) - t) / N, of y's shape, for the last forward."""
        return self._backward(dout, "sigmoid_cross_entropy")


def _bce_targets(who, y, t, host):
    _like(who, y, t)
    if host and t.size and not ((t >= 0) & (t <= 1)).all():
        raise ValueError(f"{who}: targets must be 0/1 labels or probabilities in [0, 1], "
                         f"got values in [{np.min(t)}, {np.max(t)}]"
                         + (" and NaN" if t.dtype.kind == "f" and np.isnan(t).any() else ""))
    return _as_dtype(t, y.dtype)


class MeanSquaredError(Loss):
    """L = 1/2 * mean over the batch of sum (y - t)^2. dL/dy = (y - t) / N."""

    def forward(self, y, t):
        """The loss (a float) of predictions y (N, ...) for targets t of y's shape."""
        y = check_float("MeanSquaredError", y, ndim=range(1, 8), what="predictions")
        t = self._targets(y, t, _mse_targets)
        K = kernels_for(y, t)
        self._y, self._t = y, t
        return K.mean_squared_error_forward(y, t)

    def backward(self, dout=1.0):
        """dL/dy = dout * (y - t) / N, of y's shape, for the last forward."""
        y, t = self._cached(), self._t
        K = kernels_for(y, t)
        return _scaled(K, K.mean_squared_error_backward(y, t, K.empty_like(y)), dout)


def _mse_targets(who, y, t, host):
    _like(who, y, t, what="predictions")
    return _as_dtype(t, y.dtype)
