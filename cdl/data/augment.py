"""Data augmentation on mini-batches: ``transform(x, t, rng) -> (x, t)``, seeded, per sample.

    from cdl.data import augment as A
    aug = A.Compose([A.HorizontalFlip(), A.Rotation(15), A.RandomResizedCrop(scale=(0.7, 1)),
                     A.Cutout(8)])
    Trainer(net, opt, augment=aug).fit(x_train, t_train, validation_data=(x_val, t_val))

Every transform takes a batch x (N, C, H, W), float32 or float64, and
targets t (labels (N,), one-hot or soft (N, K), or None), and returns new
arrays: the input is never modified. ``rng`` is a numpy Generator (the
Trainer passes its own, so a seeded Trainer augments reproducibly) or None
for cdl's package generator. ``p`` is the probability that a given sample
gets the transform; each sample decides independently.

The Trainer applies ``augment`` to training batches only. Evaluation
(train accuracy, validation loss and accuracy) sees the data as given.

Geometric transforms (flips, Rotation, Translation, RandomResizedCrop) are
affine maps, sampled bilinearly by one kernel over the whole batch
(warp_affine, cdl.kernels.augment); ``Compose`` multiplies the matrices of
consecutive geometric transforms and resamples once (less blur, one pass). Photometric
transforms (Brightness, Contrast, Saturation, Hue, Gamma) assume pixel
values in [0, 1], as cdl's loaders return them, and clip their output to
[0, 1]; Saturation and Hue need RGB (C = 3). MixUp and CutMix mix pairs of
samples and return soft targets (N, K) in x's dtype, which
``SoftmaxCrossEntropy`` accepts; integer labels need ``num_classes``.

Beyond images: GaussianNoise and MixUp take any batch (N, ...): feature
vectors, sequences, spectrograms. TimeMasking and FrequencyMasking
(SpecAugment, in cdl.data.masking, re-exported here) take spectrogram-like
batches (N, C, F, T). A Compose checks its input as its strictest member does.

On the GPU: a batch that is a device array (``cdl.cuda.to_device(x)``) is
transformed on the device by the CUDA twins of the same kernels
(``kernels_for(x)``) and stays there. The random parameters (which samples,
matrices, boxes, factors, shifts, partners) are drawn on the host from rng
exactly as for a host batch and copied to the device (a few small arrays per
transform), so with the same rng a transform gives the same batch on both
devices, to rounding. GaussianNoise and RandomErasing(value="random") are the
exceptions: the CPU draws their batch-sized noise from rng, the GPU one seed
(as Dropout does), so their noise, and whatever a Compose draws after them,
differs between devices. Targets stay on the host, wherever x is: MixUp and
CutMix mix them there and refuse device targets.
"""
import abc
import math

import numpy as np

from cdl import init as _init
from cdl._checks import check_float
from cdl.backend import is_device_array, kernels_for
from cdl.cuda import to_device


def _probability(who, p):
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.number)) \
            or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{who}: p must be a number in [0, 1], got {p!r}")
    return float(p)


def _range(who, name, v, low=-math.inf, high=math.inf, symmetric=False):
    """(a, b) with low <= a <= b <= high from a pair, or from one number v as (-v, v) / (v, v)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{who}: {name} must be a number or a pair, got {v!r}")
        a, b = v
    elif symmetric:
        a, b = -v, v
    else:
        a = b = v
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: {name} must be numbers, got {v!r}") from None
    if not (low <= a <= b <= high):
        raise ValueError(f"{who}: {name} must satisfy {low} <= low <= high <= {high}, got {v!r}")
    return a, b


def check_batch(who, x):
    """x as a C-contiguous float (N, C, H, W) batch, or a ValueError naming the layout."""
    x = check_float(who, x, what="batch")
    if x.ndim != 4:
        hint = ""
        if x.ndim == 2:
            hint = "; reshape flat images to (N, C, H, W) first"
        elif x.ndim == 3:
            hint = "; add the channel axis: x[:, None] for grey images"
        raise ValueError(f"{who}: expected an (N, C, H, W) image batch, got shape {x.shape}{hint}")
    # (N, H, W, C) with square images: H == W, and C a typical channel count
    if x.shape[1] not in (1, 3, 4) and x.shape[1] == x.shape[2] and x.shape[3] in (1, 3, 4):
        raise ValueError(f"{who}: batch of shape {x.shape} looks channels-last (NHWC); "
                         f"transpose it to (N, C, H, W): x.transpose(0, 3, 1, 2)")
    return x


def check_tensor(who, x):
    """x as a C-contiguous float batch (N, ...) of any rank (transforms that need no layout)."""
    x = check_float(who, x, what="batch")
    if x.ndim < 1:
        raise ValueError(f"{who}: expected a batch (N, ...), got a scalar")
    return x


def check_spectrogram(who, x):
    """x as a C-contiguous float (N, C, F, T) batch: channels, frequency bins, time frames."""
    return check_float(who, x, ndim=4, what="batch", layout="(N, C, F, T)")


_CHECKS = {"image": check_batch, "spectrogram": check_spectrogram, "any": check_tensor}


def _targets(who, t, n):
    if t is None:
        return None
    if not is_device_array(t):
        t = np.asarray(t)
    if len(t) != n:
        raise ValueError(f"{who}: {len(t)} targets for a batch of {n} samples")
    return t


def _rgb(who, x):
    if x.shape[1] != 3:
        raise ValueError(f"{who}: needs RGB images (N, 3, H, W), got shape {x.shape}")


class Transform(abc.ABC):
    """Base: ``transform(x, t=None, rng=None) -> (x, t)`` on an (N, C, H, W) batch.

    ``layout`` says what x must be: "image" (N, C, H, W), "spectrogram"
    (N, C, F, T) or "any" (N, ...).
    """

    layout = "image"

    def __init__(self, p):
        self.p = _probability(self.name, p)

    @property
    def name(self):
        return type(self).__name__

    def __call__(self, x, t=None, rng=None):
        x = _CHECKS[self.layout](self.name, x)
        t = _targets(self.name, t, len(x))
        K = kernels_for(x)
        return self._apply(K.copy(x, K.empty_like(x)), t, _init.get_rng(rng))

    @abc.abstractmethod
    def _apply(self, x, t, rng):
        """Transform x (the caller's own copy, may be changed in place); return (x, t)."""

    def _chosen(self, n, rng):
        """(n,) bool: which samples get the transform this time."""
        return rng.random(n) < self.p

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{self.name}({args})"


# -- geometric ---------------------------------------------------------------
class Geometric(Transform):
    """An affine resampling: subclasses give per-sample output -> input matrices.

    ``fill`` is the value read outside the image (0 by default).
    """

    def __init__(self, p, fill=0.0):
        super().__init__(p)
        self.fill = float(fill)

    @abc.abstractmethod
    def matrices(self, n, h, w, rng):
        """(M (n, 3, 3), active (n,) bool): output -> input maps, identity where inactive."""

    def _apply(self, x, t, rng):
        N, _, H, W = x.shape
        mats, active = self.matrices(N, H, W, rng)
        return warp(x, mats, active, self.fill), t


def warp(x, mats, active, fill=0.0):
    """x (N, C, H, W) resampled through per-sample output -> input maps mats (N, 3, 3).

    active (N,) bool: samples to warp (the others are copied). mats and
    active are host arrays (copied to the GPU when x is there). Pixel
    coordinates and sampling as in cdl.kernels.augment.
    """
    x = check_batch("warp", x)
    mats = np.ascontiguousarray(mats, dtype=np.float64)
    if mats.shape != (len(x), 3, 3) or not np.isfinite(mats).all():
        raise ValueError(f"warp: need finite matrices of shape ({len(x)}, 3, 3), "
                         f"got {mats.shape}")
    active = np.ascontiguousarray(active, dtype=np.bool_)
    if active.shape != (len(x),):
        raise ValueError(f"warp: active must have shape ({len(x)},), got {active.shape}")
    K = kernels_for(x)
    return K.warp_affine(x, _on(x, mats[:, :2]), _on(x, active), x.dtype.type(fill),
                         K.empty_like(x))


def _on(x, a):
    """Host array a (parameters drawn from rng: small) where x is: copied to the GPU for a
    device batch, as it is (C-contiguous) for a host one."""
    return to_device(a) if is_device_array(x) else np.ascontiguousarray(a)


def _per_sample(x, v):
    """Per-sample values v (N,) in x's dtype, where x is."""
    return _on(x, np.asarray(v).astype(x.dtype))


def _identity(n):
    return np.broadcast_to(np.eye(3), (n, 3, 3)).copy()


def _about_centre(m, h, w):
    """The map m, given about the image centre, as a map on pixel coordinates."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    to = np.array([[1.0, 0, cx], [0, 1.0, cy], [0, 0, 1.0]])
    back = np.array([[1.0, 0, -cx], [0, 1.0, -cy], [0, 0, 1.0]])
    return to @ m @ back


class HorizontalFlip(Geometric):
    """Mirror left-right: out[..., i, j] = x[..., i, W-1-j] (exact, no interpolation)."""

    def __init__(self, p=0.5):
        super().__init__(p)

    def matrices(self, n, h, w, rng):
        active = self._chosen(n, rng)
        m = _identity(n)
        m[active, 0, 0] = -1.0
        m[active, 0, 2] = w - 1.0
        return m, active


class VerticalFlip(Geometric):
    """Mirror top-bottom: out[..., i, j] = x[..., H-1-i, j] (exact)."""

    def __init__(self, p=0.5):
        super().__init__(p)

    def matrices(self, n, h, w, rng):
        active = self._chosen(n, rng)
        m = _identity(n)
        m[active, 1, 1] = -1.0
        m[active, 1, 2] = h - 1.0
        return m, active


class Rotation(Geometric):
    """Rotate the content counter-clockwise by an angle ~ U(degrees) about the centre.

    degrees: d for U(-d, d), or a pair (low, high). Corners brought in from
    outside read as ``fill``.
    """

    def __init__(self, degrees=15.0, p=1.0, fill=0.0):
        super().__init__(p, fill)
        self.degrees = _range("Rotation", "degrees", degrees, -360, 360, symmetric=True)

    def matrices(self, n, h, w, rng):
        active = self._chosen(n, rng)
        theta = np.deg2rad(rng.uniform(*self.degrees, n)) * active
        c, s = np.cos(theta), np.sin(theta)
        m = _identity(n)
        # output -> input is the inverse (clockwise) rotation in image coordinates (y down)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
        return _about_centre(m, h, w), active


class Translation(Geometric):
    """Shift the content by (dy, dx) ~ U(-max*H, max*H) x U(-max*W, max*W) pixels.

    max_shift: a fraction of the image size, one number or (vertical,
    horizontal). integer=True rounds shifts to whole pixels (exact copies,
    no interpolation), like padding and random cropping.
    """

    def __init__(self, max_shift=0.1, p=1.0, integer=False, fill=0.0):
        super().__init__(p, fill)
        pair = max_shift if isinstance(max_shift, (tuple, list)) else (max_shift, max_shift)
        if len(pair) != 2 or not all(isinstance(v, (int, float, np.number))
                                     and not isinstance(v, bool) and 0 <= v <= 1 for v in pair):
            raise ValueError(f"Translation: max_shift must be a fraction in [0, 1] or a pair "
                             f"of them, got {max_shift!r}")
        self.max_shift = (float(pair[0]), float(pair[1]))
        self.integer = bool(integer)

    def matrices(self, n, h, w, rng):
        active = self._chosen(n, rng)
        dy = rng.uniform(-1, 1, n) * self.max_shift[0] * h * active
        dx = rng.uniform(-1, 1, n) * self.max_shift[1] * w * active
        if self.integer:
            dy, dx = np.round(dy), np.round(dx)
        m = _identity(n)
        m[:, 0, 2], m[:, 1, 2] = -dx, -dy
        return m, active


class RandomResizedCrop(Geometric):
    """Crop a random box and rescale it to the full size (Szegedy et al. 2015, torchvision).

    The box covers a fraction ~ U(scale) of the image area with aspect ratio
    (width/height) log-uniform in ``ratio``, clipped to the image, at a
    uniform random position. Resampling is bilinear with corner pixels
    aligned (the box's first and last pixel centres map to the image's), so
    scale=(1, 1) is the identity.
    """

    def __init__(self, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), p=1.0):
        super().__init__(p)
        self.scale = _range("RandomResizedCrop", "scale", scale, 1e-6, 1.0)
        self.ratio = _range("RandomResizedCrop", "ratio", ratio, 1e-3, 1e3)

    def matrices(self, n, h, w, rng):
        active = self._chosen(n, rng)
        area = rng.uniform(*self.scale, n)
        aspect = np.exp(rng.uniform(*np.log(self.ratio), n))
        cw = np.clip(np.sqrt(area * aspect) * w, 1.0, w)
        ch = np.clip(np.sqrt(area / aspect) * h, 1.0, h)
        x0 = rng.uniform(0, 1, n) * (w - cw)
        y0 = rng.uniform(0, 1, n) * (h - ch)
        cw, ch = np.where(active, cw, w), np.where(active, ch, h)
        x0, y0 = np.where(active, x0, 0.0), np.where(active, y0, 0.0)
        m = _identity(n)
        # corner pixels to corner pixels (align_corners): output 0..W-1 samples x0..x0+cw-1,
        # so no sample point leaves the image and nothing of fill bleeds in at the edges
        m[:, 0, 0], m[:, 0, 2] = (cw - 1) / max(w - 1, 1), x0
        m[:, 1, 1], m[:, 1, 2] = (ch - 1) / max(h - 1, 1), y0
        return m, active


# -- photometric -------------------------------------------------------------
def _factors(rng, n, spread, active):
    """Per-sample factors ~ U(1 - spread, 1 + spread), exactly 1 where inactive."""
    return np.where(active, rng.uniform(1 - spread, 1 + spread, n), 1.0)


class _Spread(Transform):
    def __init__(self, who, spread, p):
        super().__init__(p)
        if isinstance(spread, bool) or not isinstance(spread, (int, float, np.number)) \
                or not 0.0 <= float(spread) <= 1.0:
            raise ValueError(f"{who}: strength must be a number in [0, 1], got {spread!r}")
        self.strength = float(spread)


class Brightness(_Spread):
    """x * f, f ~ U(1 - strength, 1 + strength), clipped to [0, 1]."""

    def __init__(self, strength=0.2, p=1.0):
        super().__init__("Brightness", strength, p)

    def _apply(self, x, t, rng):
        f = _factors(rng, len(x), self.strength, self._chosen(len(x), rng))
        return kernels_for(x).adjust_brightness(x, _per_sample(x, f), x), t


class Contrast(_Spread):
    """mean + (x - mean) * f per image (mean of its grey levels), clipped to [0, 1]."""

    def __init__(self, strength=0.2, p=1.0):
        super().__init__("Contrast", strength, p)

    def _apply(self, x, t, rng):
        f = _factors(rng, len(x), self.strength, self._chosen(len(x), rng))
        return kernels_for(x).adjust_contrast(x, _per_sample(x, f), x), t


class Saturation(_Spread):
    """grey + (x - grey) * f per pixel (f = 0 greyscale, f > 1 more vivid), RGB, clipped."""

    def __init__(self, strength=0.2, p=1.0):
        super().__init__("Saturation", strength, p)

    def _apply(self, x, t, rng):
        _rgb(self.name, x)
        f = _factors(rng, len(x), self.strength, self._chosen(len(x), rng))
        return kernels_for(x).adjust_saturation(x, _per_sample(x, f), x), t


class Hue(Transform):
    """Rotate the hue by U(-shift, shift) turns (0.5 = opposite colours), RGB in [0, 1]."""

    def __init__(self, shift=0.05, p=1.0):
        super().__init__(p)
        self.shift = _range("Hue", "shift", shift, -0.5, 0.5, symmetric=True)

    def _apply(self, x, t, rng):
        _rgb(self.name, x)
        active = self._chosen(len(x), rng)
        shifts = rng.uniform(*self.shift, len(x))
        return kernels_for(x).shift_hue(x, _on(x, shifts), _on(x, active), x), t


class Gamma(Transform):
    """x ** g, g ~ log-uniform in ``gamma`` (g < 1 brightens shadows), on x clipped to [0, 1]."""

    def __init__(self, gamma=(0.7, 1.5), p=1.0):
        super().__init__(p)
        self.gamma = _range("Gamma", "gamma", gamma, 1e-3, 1e3)

    def _apply(self, x, t, rng):
        active = self._chosen(len(x), rng)
        g = np.where(active, np.exp(rng.uniform(*np.log(self.gamma), len(x))), 1.0)
        return kernels_for(x).adjust_gamma(x, _per_sample(x, g), x), t


class GaussianNoise(Transform):
    """x + N(0, std^2) per value, on any batch (N, ...) (not clipped: works for standardised
    inputs too)."""

    layout = "any"

    def __init__(self, std=0.05, p=1.0):
        super().__init__(p)
        if isinstance(std, bool) or not isinstance(std, (int, float, np.number)) \
                or not 0.0 <= float(std) < math.inf:
            raise ValueError(f"GaussianNoise: std must be a finite number >= 0, got {std!r}")
        self.std = float(std)

    def _apply(self, x, t, rng):
        active = self._chosen(len(x), rng)
        return kernels_for(x).add_gaussian_noise(x, rng, _per_sample(x, active * self.std), x), t


# -- erasing -----------------------------------------------------------------
def check_boxes(who, boxes, shape):
    """(N, 4) int64 boxes (y0, y1, x0, x1) inside an image batch of ``shape``, or ValueError:
    the kernels trust them."""
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
    less than size^2 pixels go.
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
    paper's best setting). Boxes lie inside the image.
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


# -- mixing ------------------------------------------------------------------
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
    the batch, lam ~ Beta(alpha, alpha) per sample. Returns soft targets.
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
    t = (1 - a) t + a t[j], a = box area / (H W). Returns soft targets.
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


# -- pipeline ----------------------------------------------------------------
class Compose(Transform):
    """Transforms in order, as one ``augment(x, t, rng) -> (x, t)`` for ``Trainer``.

    Runs of consecutive geometric transforms with the same fill are fused:
    their matrices multiply (apply T1 then T2: M = M1 @ M2) and the batch is
    resampled once. p of the Compose itself is 1; each member keeps its own.
    """

    def __init__(self, transforms):
        super().__init__(1.0)
        transforms = list(transforms)
        for i, tr in enumerate(transforms):
            if not isinstance(tr, Transform):
                raise ValueError(f"Compose: item {i} is {type(tr).__name__}, not an augment "
                                 f"Transform")
        self.transforms = transforms

    @property
    def layout(self):
        """The strictest of the members' layouts (they are applied unchecked, in _apply)."""
        layouts = {tr.layout for tr in self.transforms}
        return next((k for k in ("image", "spectrogram") if k in layouts), "any")

    def _apply(self, x, t, rng):
        i, ts = 0, self.transforms
        while i < len(ts):
            if isinstance(ts[i], Geometric):
                run = [ts[i]]
                while i + len(run) < len(ts) and isinstance(ts[i + len(run)], Geometric) \
                        and ts[i + len(run)].fill == ts[i].fill:
                    run.append(ts[i + len(run)])
                N, _, H, W = x.shape
                mats, active = _identity(N), np.zeros(N, dtype=bool)
                for tr in run:
                    m, a = tr.matrices(N, H, W, rng)
                    mats = mats @ m
                    active |= a
                x = warp(x, mats, active, run[0].fill)
                i += len(run)
            else:
                x, t = ts[i]._apply(x, t, rng)
                i += 1
        return x, t

    def __repr__(self):
        return "Compose([" + ", ".join(repr(tr) for tr in self.transforms) + "])"


# SpecAugment lives in its own module (this one is long); it builds on Transform above
from cdl.data.masking import FrequencyMasking, TimeMasking  # noqa: E402

__all__ = ["Transform", "Geometric", "Compose", "warp", "check_batch", "check_tensor",
           "check_spectrogram", "check_boxes", "TimeMasking", "FrequencyMasking",
           "HorizontalFlip", "VerticalFlip", "Rotation", "Translation", "RandomResizedCrop",
           "Brightness", "Contrast", "Saturation", "Hue", "Gamma", "GaussianNoise",
           "Cutout", "RandomErasing", "MixUp", "CutMix"]
