"""cdl.data.geometric: flips, rotations, translations and crops move pixels where they should."""
import numpy as np

from cdl.data import augment as A

from .test_augment import images


def test_flips_are_exact_and_follow_p(rng):
    x = images(rng, (4, 2, 5, 7))
    np.testing.assert_array_equal(A.HorizontalFlip(p=1)(x, None, rng)[0], x[..., ::-1])
    np.testing.assert_array_equal(A.VerticalFlip(p=1)(x, None, rng)[0], x[:, :, ::-1])
    np.testing.assert_array_equal(A.HorizontalFlip(p=0)(x, None, rng)[0], x)
    big = images(rng, (2000, 1, 2, 3))
    y, _ = A.HorizontalFlip(p=0.3)(big, None, rng)
    flipped = np.all(y == big[..., ::-1], axis=(1, 2, 3))
    assert abs(flipped.mean() - 0.3) < 0.04



def test_rotation_by_90_degrees_is_rot90(rng):
    x = images(rng, (3, 2, 6, 6))
    y, _ = A.Rotation(degrees=(90, 90))(x, None, rng)
    np.testing.assert_allclose(y, np.rot90(x, k=1, axes=(2, 3)), atol=1e-6)
    y, _ = A.Rotation(degrees=(-90, -90))(x, None, rng)
    np.testing.assert_allclose(y, np.rot90(x, k=-1, axes=(2, 3)), atol=1e-6)



def test_rotation_keeps_the_centre_and_fills_corners(rng):
    x = np.ones((1, 1, 9, 9), np.float32)
    y, _ = A.Rotation(degrees=(45, 45), fill=-1.0)(x, None, rng)
    assert y[0, 0, 4, 4] == 1.0
    assert y[0, 0, 0, 0] == -1.0 and y[0, 0, 8, 8] == -1.0



def test_integer_translation_is_a_shift_with_fill(rng):
    x = images(rng, (200, 1, 6, 6))
    y, _ = A.Translation(0.5, integer=True)(x, None, rng)
    for n in range(len(x)):
        found = False
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                want = np.zeros_like(x[n])
                src = x[n][:, max(0, -dy):6 - max(0, dy), max(0, -dx):6 - max(0, dx)]
                want[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
                found |= np.array_equal(y[n], want)
        assert found



def test_random_resized_crop_full_box_is_identity_and_crop_zooms(rng):
    x = images(rng, (3, 1, 8, 8))
    y, _ = A.RandomResizedCrop(scale=(1, 1), ratio=(1, 1))(x, None, rng)
    np.testing.assert_allclose(y, x, atol=1e-6)
    # a quarter-area crop (4 of 8 pixels across) of a ramp: slope (4 - 1) / (8 - 1)
    ramp = np.tile(np.arange(8, dtype=np.float64), (5, 1, 8, 1))
    y, _ = A.RandomResizedCrop(scale=(0.25, 0.25), ratio=(1, 1))(ramp, None, rng)
    np.testing.assert_allclose(np.diff(y, axis=3), 3 / 7, atol=1e-9)
    assert y.min() >= 0 and y.max() <= 7
