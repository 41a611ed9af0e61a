"""Erasing augmentations: Cutout and RandomErasing fill a box of each chosen sample.

Boxes are (N, 4) int64 rows (y0, y1, x0, x1), drawn on the host and checked
(``check_boxes``) before a kernel trusts them. Re-exported by
cdl.data.augment, where they are documented as a family.
"""
import numpy as np

from cdl.backend import kernels_for
from cdl.data.augment import Transform, _on, _range


def check_boxes(who, boxes, shape):
    """(N, 4) int64 boxes (y0, y1, x0, x1) inside an image batch of ``shape``, or a ValueError
    naming who: the kernels trust them."""
    boxes = np.ascontiguousarray(boxes, dtype=np.int64)
    N, _, H, W = shape
    if boxes.shape != (N, 4):
        raise ValueError(f"{who}: boxes must have shape ({N}, 4), got {boxes.shape}")
    y0, y1, x0, x1 = boxes.T
    if (y0 < 0).any() or (x0 < 0).any() or (y1 > H).any() or (x1 > W).any() \
            or (y1 < y0).any() or (x1 < x0).any():
        raise ValueError(f"{who}: boxes must satisfy 0 <= y0 <= y1 <= {H}, 0 <= x0 <= x1 <= {W}")
    return boxes


def _boxes(y0, y1, x0, x1, h, w, active):
    """(N, 4) int64 boxes (y0, y1, x0, x1) clipped to the image; empty where inactive."""
    boxes = np.stack([np.clip(y0, 0, h), np.clip(y1, 0, h), np.clip(x0, 0, w),
                      np.clip(x1, 0, w)], axis=1).astype(np.int64)
    boxes[~active] = 0
    return boxes


class Cutout(Transform):
    """Zero (or ``value``) a size x size square at a uniform random centre (DeVries & Taylor 2017).

    The square may hang over the border (the paper's choice), so sometimes
    less than size^2 pixels go. p: the probability that a sample loses a square.
    """

    def __init__(self, size=8, p=1.0, value=0.0):
        super().__init__(p)
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"Cutout: size must be a positive int, got {size!r}")
        self.size, self.value = int(size), float(value)

    def _apply(self, x, t, rng):
        N, C, H, W = x.shape
        active = self._chosen(N, rng)
        y0 = rng.integers(0, H, N) - self.size // 2
        x0 = rng.integers(0, W, N) - self.size // 2
        boxes = check_boxes(self.name, _boxes(y0, y0 + self.size, x0, x0 + self.size, H, W,
                                              active), x.shape)
        values = np.full((N, C), self.value, dtype=x.dtype)
        return kernels_for(x).fill_boxes(x, _on(x, boxes), _on(x, values), x), t


class RandomErasing(Transform):
    """Erase a random box (Zhong et al. 2017): area ~ U(scale) of the image, aspect log-U(ratio).

    value: a number, or "random" for U(0, 1) noise per erased pixel (the
    paper's best setting). Boxes lie inside the image. p: the probability
    that a sample loses a box.
    """

    def __init__(self, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, p=0.5):
        super().__init__(p)
        self.scale = _range("RandomErasing", "scale", scale, 0.0, 1.0)
        self.ratio = _range("RandomErasing", "ratio", ratio, 1e-3, 1e3)
        if not (value == "random" or (isinstance(value, (int, float, np.number))
                                      and not isinstance(value, bool))):
            raise ValueError(f"RandomErasing: value must be a number or 'random', got {value!r}")
        self.value = value if value == "random" else float(value)

    def _apply(self, x, t, rng):
        N, C, H, W = x.shape
        active = self._chosen(N, rng)
        area = rng.uniform(*self.scale, N) * H * W
        aspect = np.exp(rng.uniform(*np.log(self.ratio), N))
        bh = np.clip(np.round(np.sqrt(area / aspect)), 1, H).astype(np.int64)
        bw = np.clip(np.round(np.sqrt(area * aspect)), 1, W).astype(np.int64)
        y0 = (rng.random(N) * (H - bh + 1)).astype(np.int64)
        x0 = (rng.random(N) * (W - bw + 1)).astype(np.int64)
        boxes = _on(x, check_boxes(self.name, _boxes(y0, y0 + bh, x0, x0 + bw, H, W, active),
                                   x.shape))
        K = kernels_for(x)
        if self.value == "random":
            return K.fill_boxes_uniform(x, boxes, rng, x), t
        return K.fill_boxes(x, boxes, _on(x, np.full((N, C), self.value, dtype=x.dtype)), x), t
