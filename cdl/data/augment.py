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

The transforms live in one module per family, all re-exported here:
cdl.data.geometric (flips, Rotation, Translation, RandomResizedCrop),
cdl.data.photometric (Brightness to GaussianNoise), cdl.data.erasing
(Cutout, RandomErasing), cdl.data.mixing (MixUp, CutMix) and
cdl.data.masking (SpecAugment); this module holds what they share: the
checks, ``Transform``, ``Geometric`` with ``warp``, and ``Compose``.

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
    """x as a C-contiguous float (N, C, H, W) batch, or a ValueError naming who and the
    layout."""
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
    """x as a C-contiguous float batch (N, ...) of any rank (transforms that need no layout),
    or a ValueError naming who."""
    x = check_float(who, x, what="batch")
    if x.ndim < 1:
        raise ValueError(f"{who}: expected a batch (N, ...), got a scalar")
    return x


def check_spectrogram(who, x):
    """x as a C-contiguous float (N, C, F, T) batch: channels, frequency bins, time frames;
    else a ValueError naming who."""
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
    (N, C, F, T) or "any" (N, ...). p is the probability that a given sample
    gets the transform (see the module docstring).
    """

    layout = "image"

    def __init__(self, p):
        self.p = _probability(self.name, p)

    @property
    def name(self):
        """The class name, used in error messages and in repr."""
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

    ``fill`` is the value read outside the image (0 by default); p the probability
    that a sample is transformed.
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

    active (N,) bool: samples to warp (the others are copied). fill is the
    value read outside the image. mats and
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


# The families live in their own modules, which build on Transform and Geometric above.
from cdl.data.erasing import Cutout, RandomErasing, check_boxes  # noqa: E402
from cdl.data.geometric import (HorizontalFlip, RandomResizedCrop, Rotation,  # noqa: E402
                                Translation, VerticalFlip)
from cdl.data.masking import FrequencyMasking, TimeMasking  # noqa: E402
from cdl.data.mixing import CutMix, MixUp  # noqa: E402
from cdl.data.photometric import (Brightness, Contrast, Gamma, GaussianNoise, Hue,  # noqa: E402
                                  Saturation)

__all__ = ["Transform", "Geometric", "Compose", "warp", "check_batch", "check_tensor",
           "check_spectrogram", "check_boxes", "TimeMasking", "FrequencyMasking",
           "HorizontalFlip", "VerticalFlip", "Rotation", "Translation", "RandomResizedCrop",
           "Brightness", "Contrast", "Saturation", "Hue", "Gamma", "GaussianNoise",
           "Cutout", "RandomErasing", "MixUp", "CutMix"]
