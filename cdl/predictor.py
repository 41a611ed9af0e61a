"""Inference helpers every model kind shares: predict in chunks, predict_proba, accuracy.

Sequential, PackedModel and Ensemble (Stacked too) inherit ``Predictor``:
each defines ``predict(x, batch_size)`` and says what its outputs are
(``outputs``); ``predict_proba`` and ``accuracy`` are written once, here.
"""
import numpy as np


def in_batches(fn, x, batch_size):
    """fn(x) computed over chunks of at most batch_size samples, concatenated along axis 0
    (batch_size None, or no more samples than that: one call)."""
    if batch_size is None or len(x) <= batch_size:
        return fn(x)
    return np.concatenate([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def labels(t):
    """Integer labels (N,) from t, labels (N,) or one-hot/soft targets (N, K), as NumPy."""
    from cdl import cuda  # cdl.cuda is loaded with cdl; a local import keeps this module a leaf
    t = np.asarray(cuda.to_host(t))
    return t.argmax(axis=1) if t.ndim == 2 else t


class Predictor:
    """predict_proba and accuracy on top of a subclass's ``predict``.

    ``outputs`` names what ``predict`` returns: "softmax" or "sigmoid" scores
    (probabilities are their softmax, or their elementwise sigmoid for
    independent labels), "probabilities" already, or "regression" values
    (which have none).
    """

    outputs = "softmax"

    def predict_proba(self, x, batch_size=None):
        """Class probabilities (N, K), a NumPy array in the outputs' dtype."""
        from cdl import cuda
        if self.outputs == "regression":
            raise ValueError(f"{type(self).__name__}.predict_proba: a regression model "
                             f"(MeanSquaredError) has no probabilities; use predict")
        scores = cuda.to_host(self.predict(x, batch_size))
        if self.outputs == "probabilities":
            return scores
        z = scores.astype(np.float64)
        if self.outputs == "sigmoid":
            p = 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|
        else:
            p = np.exp(z - z.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
        return p.astype(scores.dtype)

    def accuracy(self, x, t, batch_size=1000):
        """Fraction of samples whose arg-max output is the label (t labels or one-hot)."""
        y = self.predict(x, batch_size)
        correct = count_correct(f"{type(self).__name__}.accuracy", y, t)
        return correct / len(y) if len(y) else float("nan")


def count_correct(who, y, t):
    """How many rows of the outputs y (host or device) have their arg-max at the label
    (t labels or one-hot); ValueError naming who for a count or label that cannot match."""
    from cdl import cuda
    y, want = cuda.to_host(y), labels(t)
    if len(want) != len(y):
        raise ValueError(f"{who}: {len(want)} labels for {len(y)} samples")
    if y.ndim == 2 and want.size and (want.min() < 0 or want.max() >= y.shape[1]):
        # a label no output can match would count as a silent miss
        raise ValueError(f"{who}: labels outside 0..{y.shape[1] - 1} "
                         f"(min {want.min()}, max {want.max()}) for {y.shape[1]} outputs")
    return float((y.argmax(axis=1) == want).sum())
