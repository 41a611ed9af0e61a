"""Loss layers: ``forward(y, t)`` returns a float, ``backward()`` returns dL/dy."""
import numpy as np

from cdl._checks import check_float


class Loss:
    """Base of the losses; ``backward(dout=1.0)`` scales the gradient."""

    def __init__(self):
        self._y = None

    def _cached(self):
        if self._y is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        return self._y

    def config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy, mean over the batch. y (N, K) scores; t labels or targets.

    t is either integer labels (N,) in [0, K), or one-hot / soft targets (N, K)
    (rows summing to 1, as MixUp and CutMix produce). With log-softmax
    computed by log-sum-exp, L = -mean_n sum_k t_nk (y_nk - max_n - log sum_j
    exp(y_nj - max_n)): exact and finite for any finite scores.
    Backward: dL/dy = (softmax(y) - t) / N.
    """

    def forward(self, y, t):
        y = check_float("SoftmaxCrossEntropy", y, ndim=2, layout="(N, classes)", what="scores")
        N, K = y.shape
        t = np.asarray(t)
        if t.ndim == 1:
            if t.dtype.kind not in "iu":
                raise ValueError(f"SoftmaxCrossEntropy: 1-D labels must be integers, got "
                                 f"{t.dtype}; pass one-hot or soft targets as (N, K) floats")
            if t.shape[0] != N:
                raise ValueError(f"SoftmaxCrossEntropy: {t.shape[0]} labels for {N} samples "
                                 f"(scores {y.shape}, labels {t.shape})")
            if t.size and (t.min() < 0 or t.max() >= K):
                raise ValueError(f"SoftmaxCrossEntropy: labels must be in [0, {K}), "
                                 f"got range [{t.min()}, {t.max()}]")
        elif t.ndim == 2:
            if t.shape != y.shape:
                raise ValueError(f"SoftmaxCrossEntropy: targets of shape {t.shape} do not "
                                 f"match scores of shape {y.shape}")
            t = t.astype(y.dtype, copy=False)
        else:
            raise ValueError(f"SoftmaxCrossEntropy: targets must be (N,) labels or (N, K) "
                             f"probabilities, got shape {t.shape}")
        z = y - y.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        if t.ndim == 1:
            loss = -log_p[np.arange(N), t].sum() / N
        else:
            loss = -(t * log_p).sum() / N
        self._y, self._t, self._log_p = y, t, log_p
        return float(loss)

    def backward(self, dout=1.0):
        self._cached()
        N = self._log_p.shape[0]
        dy = np.exp(self._log_p)
        if self._t.ndim == 1:
            dy[np.arange(N), self._t] -= 1
        else:
            dy -= self._t
        dy *= dout / N
        return dy


class MeanSquaredError(Loss):
    """L = 1/2 * mean over the batch of sum (y - t)^2. dL/dy = (y - t) / N."""

    def forward(self, y, t):
        y = check_float("MeanSquaredError", y, ndim=range(1, 8), what="predictions")
        t = np.asarray(t)
        if t.shape != y.shape:
            raise ValueError(f"MeanSquaredError: targets of shape {t.shape} do not match "
                             f"predictions of shape {y.shape}")
        diff = y - t.astype(y.dtype, copy=False)
        self._y, self._diff = y, diff
        return float(0.5 * (diff * diff).sum() / y.shape[0])

    def backward(self, dout=1.0):
        self._cached()
        return self._diff * (dout / self._y.shape[0])
