"""cdl.data.masking (SpecAugment) and the augmentations that take any batch (N, ...)."""
import numpy as np
import pytest

from cdl.data import augment as A


def spectrograms(rng, shape=(8, 2, 12, 30)):
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)


def _lost(y, x, axis):
    """(N, L) bool: positions along axis (2 bins, 3 frames) changed in every channel."""
    other = (1, 3) if axis == 2 else (1, 2)
    return (y != x).all(axis=other)


@pytest.mark.parametrize("cls, axis", [(A.FrequencyMasking, 2), (A.TimeMasking, 3)])
def test_one_mask_is_a_run_of_at_most_max_width_zeros(rng, cls, axis):
    x = spectrograms(rng)
    labels = np.arange(len(x))
    y, t = cls(max_width=5)(x, labels, rng)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(t, labels)  # masking leaves the targets alone
    lost = _lost(y, x, axis)
    changed = y != x
    assert (y[changed] == 0).all()
    # only whole bins / frames change, across every channel
    assert changed.sum() == lost.sum() * x.shape[1] * x.shape[5 - axis]
    for row in lost:
        where = np.flatnonzero(row)
        assert len(where) <= 5
        if len(where):
            assert where[-1] - where[0] + 1 == len(where)  # consecutive
    assert lost.any()


def test_mask_widths_cover_zero_to_max_width(rng):
    x = spectrograms(rng, (400, 1, 4, 20))
    y, _ = A.TimeMasking(max_width=3)(x, None, rng)
    widths = _lost(y, x, 3).sum(axis=1)
    assert sorted(set(widths.tolist())) == [0, 1, 2, 3]


def test_several_masks_max_fraction_and_mean_fill(rng):
    x = spectrograms(rng, (50, 2, 6, 40))
    y, _ = A.TimeMasking(max_width=40, max_fraction=0.1)(x, None, rng)
    assert _lost(y, x, 3).sum(axis=1).max() <= 4               # 10 % of 40 frames
    y, _ = A.TimeMasking(max_width=2, num_masks=3)(x, None, rng)
    assert 2 < _lost(y, x, 3).sum(axis=1).max() <= 6
    y, _ = A.FrequencyMasking(max_width=3, value="mean")(x, None, rng)
    mean = x.mean(axis=(2, 3), keepdims=True)
    changed = y != x
    np.testing.assert_array_equal(y[changed], np.broadcast_to(mean, x.shape)[changed])


def test_probability_p_is_per_sample(rng):
    x = spectrograms(rng, (2000, 1, 4, 10))
    assert (A.TimeMasking(4, p=0.0)(x, None, rng)[0] == x).all()
    y, _ = A.FrequencyMasking(4, p=0.3)(x, None, rng)
    # a chosen sample loses 1..4 bins 4 times in 5 (width 0 is one of five draws)
    frac = (y != x).any(axis=(1, 2, 3)).mean()
    assert abs(frac - 0.3 * 0.8) < 0.04


def test_seeded_input_untouched_and_composable(rng):
    x = spectrograms(rng)
    t = rng.integers(0, 3, len(x))
    keep = x.copy()
    aug = A.Compose([A.FrequencyMasking(4), A.TimeMasking(6, num_masks=2),
                     A.GaussianNoise(0.01), A.MixUp(num_classes=3)])
    assert aug.layout == "spectrogram"
    a = aug(x, t, np.random.default_rng(7))
    b = aug(x, t, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(x, keep)
    assert a[1].shape == (len(x), 3)


def test_spectrogram_layout_only(rng):
    with pytest.raises(ValueError, match=r"TimeMasking: expected 4-D \(N, C, F, T\) batch"):
        A.TimeMasking(3)(np.zeros((4, 12, 30), np.float32))
    # no channels-last guess for spectrograms: (N, C, F, T) with F == T and T = 3 is fine
    y, _ = A.FrequencyMasking(2)(spectrograms(rng, (2, 5, 3, 3)), None, rng)
    assert y.shape == (2, 5, 3, 3)


@pytest.mark.parametrize("make, match", [
    (lambda: A.TimeMasking(-1), "max_width must be an int >= 0"),
    (lambda: A.FrequencyMasking(2.5), "max_width must be an int >= 0"),
    (lambda: A.TimeMasking(3, num_masks=0), "num_masks must be a positive int"),
    (lambda: A.TimeMasking(3, value="median"), "value must be a finite number or 'mean'"),
    (lambda: A.TimeMasking(3, max_fraction=0), r"max_fraction must be a number in \(0, 1\]"),
    (lambda: A.FrequencyMasking(3, p=2), r"p must be a number in \[0, 1\]"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- any batch (N, ...) ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(300, 20), (50, 3, 40), (20, 2, 6, 7, 5)])
def test_gaussian_noise_on_any_shape(rng, shape):
    x = np.zeros(shape, np.float32)
    y, _ = A.GaussianNoise(0.1)(x, None, rng)
    assert y.shape == shape and y.dtype == np.float32 and abs(y.std() - 0.1) < 0.01
    y, _ = A.GaussianNoise(0.1, p=0.5)(x, None, rng)
    hit = (y != 0).reshape(len(x), -1).all(axis=1)
    assert ((y == 0).reshape(len(x), -1).all(axis=1) | hit).all()  # whole samples or none
    assert 0.2 < hit.mean() < 0.8


@pytest.mark.parametrize("shape", [(12, 5), (12, 2, 9), (12,)])
def test_mixup_on_any_shape_mixes_inputs_and_targets_alike(rng, shape):
    x = rng.random(shape)
    t = np.arange(shape[0])  # a class per sample: the soft target names the partner and lam
    y, soft = A.MixUp(alpha=0.4, num_classes=shape[0])(x, t, rng)
    assert y.shape == shape and soft.shape == (shape[0], shape[0])
    np.testing.assert_allclose(soft.sum(axis=1), 1)
    flat_x, flat_y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    for i in range(len(x)):
        lam = soft[i, i]
        j = i if lam == 1 else int(np.argmax(np.where(np.arange(len(x)) == i, -1, soft[i])))
        np.testing.assert_allclose(flat_y[i], lam * flat_x[i] + (1 - lam) * flat_x[j])
    assert (np.diag(soft) < 1).any()


def test_image_transforms_still_want_images_in_a_compose(rng):
    with pytest.raises(ValueError, match=r"expected an \(N, C, H, W\) image batch"):
        A.Compose([A.GaussianNoise(), A.HorizontalFlip()])(rng.random((4, 10)).astype(np.float32))
    y, _ = A.Compose([A.GaussianNoise(0.1)])(rng.random((4, 10)).astype(np.float32), None, rng)
    assert y.shape == (4, 10)
