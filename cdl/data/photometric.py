"""Photometric augmentations: Brightness, Contrast, Saturation, Hue, Gamma, GaussianNoise.

Per-sample factors, shifts or exponents are drawn on the host from rng and
applied by one kernel over the batch (cdl.kernels.augment), where x is.
Brightness to Gamma assume pixels in [0, 1] and clip to it; Saturation and
Hue need RGB. GaussianNoise takes any batch (N, ...). Re-exported by
cdl.data.augment, where they are documented as a family.
"""
import math

import numpy as np

from cdl.backend import kernels_for
from cdl.data.augment import Transform, _on, _per_sample, _range, _rgb


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
    """x * f, f ~ U(1 - strength, 1 + strength), clipped to [0, 1].

    p: the probability that a sample is changed.
    """

    def __init__(self, strength=0.2, p=1.0):
        super().__init__("Brightness", strength, p)

    def _apply(self, x, t, rng):
        f = _factors(rng, len(x), self.strength, self._chosen(len(x), rng))
        return kernels_for(x).adjust_brightness(x, _per_sample(x, f), x), t


class Contrast(_Spread):
    """mean + (x - mean) * f per image (mean of its grey levels), clipped to [0, 1].

    f ~ U(1 - strength, 1 + strength); p: the probability that a sample is changed.
    """

    def __init__(self, strength=0.2, p=1.0):
        super().__init__("Contrast", strength, p)

    def _apply(self, x, t, rng):
        f = _factors(rng, len(x), self.strength, self._chosen(len(x), rng))
        return kernels_for(x).adjust_contrast(x, _per_sample(x, f), x), t


class Saturation(_Spread):
    """grey + (x - grey) * f per pixel (f = 0 greyscale, f > 1 more vivid), RGB, clipped.

    f ~ U(1 - strength, 1 + strength); p: the probability that a sample is changed.
    """

    def __init__(self, strength=0.2, p=1.0):
        super().__init__("Saturation", strength, p)

    def _apply(self, x, t, rng):
        _rgb(self.name, x)
        f = _factors(rng, len(x), self.strength, self._chosen(len(x), rng))
        return kernels_for(x).adjust_saturation(x, _per_sample(x, f), x), t


class Hue(Transform):
    """Rotate the hue by U(-shift, shift) turns (0.5 = opposite colours), RGB in [0, 1].

    p: the probability that a sample is changed.
    """

    def __init__(self, shift=0.05, p=1.0):
        super().__init__(p)
        self.shift = _range("Hue", "shift", shift, -0.5, 0.5, symmetric=True)

    def _apply(self, x, t, rng):
        _rgb(self.name, x)
        active = self._chosen(len(x), rng)
        shifts = rng.uniform(*self.shift, len(x))
        return kernels_for(x).shift_hue(x, _on(x, shifts), _on(x, active), x), t


class Gamma(Transform):
    """x ** g, g ~ log-uniform in ``gamma`` (g < 1 brightens shadows), on x clipped to [0, 1].

    p: the probability that a sample is changed.
    """

    def __init__(self, gamma=(0.7, 1.5), p=1.0):
        super().__init__(p)
        self.gamma = _range("Gamma", "gamma", gamma, 1e-3, 1e3)

    def _apply(self, x, t, rng):
        active = self._chosen(len(x), rng)
        g = np.where(active, np.exp(rng.uniform(*np.log(self.gamma), len(x))), 1.0)
        return kernels_for(x).adjust_gamma(x, _per_sample(x, g), x), t


class GaussianNoise(Transform):
    """x + N(0, std^2) per value, on any batch (N, ...) (not clipped: works for standardised
    inputs too). p: the probability that a sample gets noise."""

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
