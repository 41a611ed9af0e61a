"""Geometric augmentations: flips, Rotation, Translation, RandomResizedCrop.

Each is a ``Geometric`` transform of cdl.data.augment: it draws per-sample
output -> input maps (3x3, pixel coordinates), which ``warp`` resamples
bilinearly in one pass (cdl.kernels.augment.warp_affine), and which
``Compose`` multiplies with its neighbours' before resampling once.
Re-exported by cdl.data.augment, where they are documented as a family.
"""
import numpy as np

from cdl.data.augment import Geometric, _about_centre, _identity, _range


class HorizontalFlip(Geometric):
    """Mirror left-right: out[..., i, j] = x[..., i, W-1-j] (exact, no interpolation).

    p: the probability that a sample is flipped.
    """

    def __init__(self, p=0.5):
        super().__init__(p)

    def matrices(self, n, h, w, rng):
        active = self._chosen(n, rng)
        m = _identity(n)
        m[active, 0, 0] = -1.0
        m[active, 0, 2] = w - 1.0
        return m, active


class VerticalFlip(Geometric):
    """Mirror top-bottom: out[..., i, j] = x[..., H-1-i, j] (exact).

    p: the probability that a sample is flipped.
    """

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
    outside read as ``fill``. p: the probability that a sample is rotated.
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
    no interpolation), like padding and random cropping. Pixels brought in
    from outside read as ``fill``; p: the probability that a sample is shifted.
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
    scale=(1, 1) is the identity. p: the probability that a sample is cropped.
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
