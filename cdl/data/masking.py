"""SpecAugment masking (Park et al. 2019, sec. 2) on spectrogram-like batches (N, C, F, T).

    from cdl.data import augment as A
    aug = A.Compose([A.FrequencyMasking(27), A.TimeMasking(100, max_fraction=1.0)])

Frequency masking sets f consecutive bins [f0, f0 + f) to a fill value,
f ~ U{0, ..., max_width} and f0 ~ U{0, ..., F - f}; time masking does the
same to t consecutive frames. One mask covers every channel of a sample
(a stretch of time or a band is missing from the whole recording); each
chosen sample (probability ``p``) gets ``num_masks`` independent masks,
which may overlap. The fill is 0 or, with value="mean", the sample's mean
per channel (the paper's choice: on spectrograms normalized to zero mean the
two agree). Both are ``augment`` transforms: reexported by cdl.data.augment,
usable in ``Compose``, ``Trainer(augment=...)`` and ``DataLoader``, and run
where x is (the masks are drawn on the host, see cdl.data.augment).
"""
import numpy as np

from cdl._checks import check_int
from cdl.backend import kernels_for
from cdl.data.augment import Transform, _on


class _Masking(Transform):
    layout = "spectrogram"
    axis = None  # 2 (frequency) or 3 (time) of (N, C, F, T)

    def __init__(self, max_width, num_masks, value, max_fraction, p):
        super().__init__(p)
        self.max_width = check_int(self.name, "max_width", max_width, minimum=0)
        self.num_masks = check_int(self.name, "num_masks", num_masks, minimum=1)
        if not (value == "mean" or (isinstance(value, (int, float, np.number))
                                    and not isinstance(value, bool) and np.isfinite(value))):
            raise ValueError(f"{self.name}: value must be a finite number or 'mean', "
                             f"got {value!r}")
        self.value = value if value == "mean" else float(value)
        if isinstance(max_fraction, bool) or not isinstance(max_fraction, (int, float, np.number)) \
                or not 0.0 < float(max_fraction) <= 1.0:
            raise ValueError(f"{self.name}: max_fraction must be a number in (0, 1], "
                             f"got {max_fraction!r}")
        self.max_fraction = float(max_fraction)

    def masks(self, n, length, rng):
        """(n, length) bool: the positions along the masked axis that each sample loses."""
        active = self._chosen(n, rng)
        # SpecAugment's time-mask bound: at most max_fraction of the axis per mask
        limit = min(self.max_width, int(self.max_fraction * length))
        widths = rng.integers(0, limit + 1, (n, self.num_masks))
        starts = (rng.random((n, self.num_masks)) * (length - widths + 1)).astype(np.int64)
        pos = np.arange(length)
        inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
        return inside.any(axis=1) & active[:, None]

    def _apply(self, x, t, rng):
        lost = self.masks(len(x), x.shape[self.axis], rng)
        K = kernels_for(x)
        N, C = x.shape[:2]
        if self.value == "mean":  # each channel's mean before masking
            values = K.global_avgpool2d_forward(x, K.empty((N, C), x.dtype))
        else:
            values = _on(x, np.full((N, C), self.value, dtype=x.dtype))
        return K.mask_bands(x, _on(x, lost), self.axis, values, x), t


class FrequencyMasking(_Masking):
    """Mask up to ``max_width`` consecutive frequency bins (axis 2) of x (N, C, F, T).

    SpecAugment's F (27 in its LibriSpeech policies, for 80 mel bins) and m_F
    (``num_masks``). value is the fill, a number or "mean"; p the probability
    that a sample is masked (see the module docstring).
    """

    axis = 2

    def __init__(self, max_width=27, num_masks=1, value=0.0, p=1.0):
        super().__init__(max_width, num_masks, value, 1.0, p)


class TimeMasking(_Masking):
    """Mask up to ``max_width`` consecutive time frames (axis 3) of x (N, C, F, T).

    SpecAugment's T (100 in its LibriSpeech policies) and m_T (``num_masks``);
    ``max_fraction`` is its p, the largest fraction of the frames one mask may
    cover (named so as not to clash with the probability ``p`` that a sample
    is masked). value is the fill, a number or "mean" (see the module
    docstring).
    """

    axis = 3

    def __init__(self, max_width=100, num_masks=1, value=0.0, max_fraction=1.0, p=1.0):
        super().__init__(max_width, num_masks, value, max_fraction, p)


__all__ = ["FrequencyMasking", "TimeMasking"]
