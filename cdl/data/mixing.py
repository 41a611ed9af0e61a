"""Mixing augmentations: MixUp and CutMix blend pairs of samples and their targets.

Both return soft targets (N, K) in x's dtype (integer labels need
``num_classes``); targets are mixed on the host, x where it is. CutMix
pastes a box (cdl.data.erasing's boxes) and weighs the targets by its area.
Re-exported by cdl.data.augment, where they are documented as a family.
"""
import math

import numpy as np

from cdl.backend import is_device_array, kernels_for
from cdl.data.augment import Transform, _on, _per_sample
from cdl.data.erasing import _boxes, check_boxes


def _soft(who, t, num_classes, dtype):
    """Targets as (N, K) floats: one-hot for integer labels (needs num_classes)."""
    if t is None:
        raise ValueError(f"{who}: mixes targets too; call it with (x, t)")
    if is_device_array(t):
        raise ValueError(f"{who}: targets are mixed on the host (they are small); pass them "
                         f"as a NumPy array (cdl.cuda.to_host(t)), x may stay on the GPU")
    if t.ndim == 2:
        if num_classes is not None and t.shape[1] != num_classes:
            raise ValueError(f"{who}: targets have {t.shape[1]} classes, num_classes is "
                             f"{num_classes}")
        return t.astype(dtype, copy=True)
    if t.ndim != 1 or t.dtype.kind not in "iu":
        raise ValueError(f"{who}: targets must be integer labels (N,) or (N, K) "
                         f"probabilities, got {t.dtype} of shape {t.shape}")
    if num_classes is None:
        raise ValueError(f"{who}: integer labels need num_classes=K to become soft targets")
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"{who}: labels must be in [0, {num_classes}), got range "
                         f"[{t.min()}, {t.max()}]")
    return np.eye(num_classes, dtype=dtype)[t]


class _Mixing(Transform):
    def __init__(self, who, alpha, p, num_classes):
        super().__init__(p)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) \
                or not 0.0 < float(alpha) < math.inf:
            raise ValueError(f"{who}: alpha must be a positive number, got {alpha!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or
                                        not isinstance(num_classes, (int, np.integer)) or
                                        num_classes < 2):
            raise ValueError(f"{who}: num_classes must be an int >= 2, got {num_classes!r}")
        self.alpha, self.num_classes = float(alpha), num_classes

    def _pairs(self, n, rng):
        """(partner index, lambda, active): lambda ~ Beta(alpha, alpha), 1 where inactive."""
        active = self._chosen(n, rng)
        lam = np.where(active, rng.beta(self.alpha, self.alpha, n), 1.0)
        return rng.permutation(n), lam, active


class MixUp(_Mixing):
    """x = lam x + (1 - lam) x[j], t = lam t + (1 - lam) t[j] (Zhang et al. 2018).

    Each chosen sample is mixed with a partner from a random permutation of
    the batch, lam ~ Beta(alpha, alpha) per sample; p is the probability that a
    sample is chosen. Returns soft targets; integer labels t need num_classes.
    Any batch (N, ...): images, feature vectors, sequences, spectrograms.
    """

    layout = "any"

    def __init__(self, alpha=0.2, p=1.0, num_classes=None):
        super().__init__("MixUp", alpha, p, num_classes)

    def _apply(self, x, t, rng):
        soft = _soft(self.name, t, self.num_classes, x.dtype)
        j, lam, _ = self._pairs(len(x), rng)
        K = kernels_for(x)
        x = K.mix_samples(x, _per_sample(x, lam), _on(x, j), K.empty_like(x))
        lt = lam.astype(soft.dtype)[:, None]
        return x, lt * soft + (1 - lt) * soft[j]


class CutMix(_Mixing):
    """Paste a box from a partner image; t mixed by the pasted area (Yun et al. 2019).

    Box area fraction 1 - lam, lam ~ Beta(alpha, alpha), at a uniform random
    centre, clipped to the image; the targets use the area actually pasted:
    t = (1 - a) t + a t[j], a = box area / (H W). p is the probability that a
    sample is chosen. Returns soft targets; integer labels t need num_classes.
    """

    def __init__(self, alpha=1.0, p=1.0, num_classes=None):
        super().__init__("CutMix", alpha, p, num_classes)

    def _apply(self, x, t, rng):
        soft = _soft(self.name, t, self.num_classes, x.dtype)
        N, _, H, W = x.shape
        j, lam, active = self._pairs(N, rng)
        bh, bw = np.sqrt(1.0 - lam) * H, np.sqrt(1.0 - lam) * W
        cy, cx = rng.uniform(0, H, N), rng.uniform(0, W, N)
        boxes = _boxes(np.round(cy - bh / 2), np.round(cy + bh / 2), np.round(cx - bw / 2),
                       np.round(cx + bw / 2), H, W, active)
        boxes = check_boxes(self.name, boxes, x.shape)
        K = kernels_for(x)
        x = K.paste_boxes(x, _on(x, boxes), x, _on(x, j), K.empty_like(x))
        a = ((boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2]) / (H * W))
        a = a.astype(soft.dtype)[:, None]
        return x, (1 - a) * soft + a * soft[j]
