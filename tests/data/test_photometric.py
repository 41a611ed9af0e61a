"""cdl.data.photometric: brightness, contrast, saturation, hue, gamma and noise, clipped to [0, 1]."""
import numpy as np

from cdl.data import augment as A

from .test_augment import images


def test_brightness_contrast_saturation_gamma(rng):
    x = images(rng, low=0.3, high=0.6)
    y, _ = A.Brightness(0.2)(x, None, rng)
    ratio = y / x
    assert np.allclose(ratio, ratio[:, :1, :1, :1], rtol=1e-5)
    assert (ratio >= 0.8 - 1e-6).all() and (ratio <= 1.2 + 1e-6).all() and ratio.std() > 0.01
    y, _ = A.Contrast(0.3)(x, None, rng)
    grey = lambda z: np.einsum("nchw,c->n", z, [0.299, 0.587, 0.114])  # noqa: E731
    np.testing.assert_allclose(grey(y), grey(x), rtol=1e-4)
    g = np.repeat(x[:, :1], 3, axis=1)  # grey RGB images have no saturation to change
    np.testing.assert_allclose(A.Saturation(0.5)(g, None, rng)[0], g, atol=1e-6)
    y, _ = A.Gamma((0.5, 2.0))(x, None, rng)
    assert ((y > x) == (y > x)[:, :1, :1, :1]).all()  # one exponent per image
    ends = np.array([0.0, 1.0], np.float32).reshape(1, 1, 1, 2)
    np.testing.assert_array_equal(A.Gamma()(ends, None, rng)[0], ends)



def test_photometric_output_is_clipped(rng):
    x = images(rng, low=0.0, high=1.0)
    for tr in (A.Brightness(0.9), A.Contrast(0.9), A.Saturation(0.9), A.Hue(0.5), A.Gamma()):
        y, _ = tr(x, None, rng)
        assert y.min() >= 0 and y.max() <= 1, tr



def test_hue_third_turn_maps_red_to_green(rng):
    red = np.zeros((1, 3, 2, 2), np.float32)
    red[:, 0] = 1
    y, _ = A.Hue(shift=(1 / 3, 1 / 3))(red, None, rng)
    np.testing.assert_allclose(y[0, :, 0, 0], [0, 1, 0], atol=1e-6)



def test_gaussian_noise_std(rng):
    x = np.zeros((50, 1, 20, 20), np.float32)
    y, _ = A.GaussianNoise(0.1)(x, None, rng)
    assert abs(y.std() - 0.1) < 0.005
