"""cdl.data.augment: each transform's effect, p, seeding, Compose, Trainer, bad input."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.data import augment as A


def images(rng, shape=(6, 3, 8, 8), low=0.1, high=0.9):
    return rng.uniform(low, high, shape).astype(np.float32)


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


def test_compose_fuses_geometry_like_sequential_application():
    x = images(np.random.default_rng(0), (5, 3, 7, 7))
    flip, rot, shift = A.HorizontalFlip(p=1), A.Rotation((30, 30)), A.Translation(0.2, p=0.5)
    got, _ = A.Compose([flip, rot, shift])(x, None, np.random.default_rng(1))
    # flips resample exactly, so flip-then-rotate sequentially equals the fused warp
    r = np.random.default_rng(1)
    want, _ = flip(x, None, r)
    m_rot, _ = rot.matrices(5, 7, 7, r)
    m_shift, a = shift.matrices(5, 7, 7, r)
    want = A.warp(want, m_rot @ m_shift, np.ones(5, bool))
    np.testing.assert_allclose(got, want, atol=1e-6)


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


def test_cutout_erases_at_most_a_square(rng):
    x = images(rng, (300, 2, 10, 10))
    y, _ = A.Cutout(4)(x, None, rng)
    zeros = (y == 0).all(axis=1).sum(axis=(1, 2))
    assert zeros.max() == 16 and zeros.min() >= 4  # a centre on the border keeps a 2x2 quarter
    assert ((y == 0) | (y == x)).all()


def test_random_erasing_box_sizes(rng):
    x = images(rng, (300, 1, 20, 20))
    y, _ = A.RandomErasing(scale=(0.1, 0.2), ratio=(1, 1), p=1.0, value=-1.0)(x, None, rng)
    area = (y == -1).sum(axis=(1, 2, 3)) / 400
    assert area.min() >= 0.08 and area.max() <= 0.23
    y, _ = A.RandomErasing(p=1.0, value="random")(x, None, rng)
    changed = (y != x).any(axis=1)
    assert changed.any(axis=(1, 2)).mean() > 0.95


@pytest.mark.parametrize("cls", [A.MixUp, A.CutMix])
def test_mixing_targets_match_the_pixels(cls, rng):
    """Sample n is a constant image c_n labelled n: mixed pixels must average to t_soft . c."""
    N = 8
    c = np.linspace(0.1, 0.9, N)
    x = np.broadcast_to(c.reshape(N, 1, 1, 1), (N, 1, 10, 10)).astype(np.float64)
    y, soft = cls(alpha=1.0, num_classes=N)(x, np.arange(N), rng)
    assert soft.shape == (N, N) and soft.dtype == np.float64
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), soft @ c, atol=1e-12)
    assert (soft.max(axis=1) < 1).any()


def test_mixing_accepts_soft_targets_and_p0_keeps_them(rng):
    x = images(rng)
    t = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)]
    y, soft = A.MixUp(p=0.0)(x, t, rng)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(soft, t)


def test_soft_targets_train_with_softmax_cross_entropy(rng):
    x = images(rng, (12, 1, 4, 4))
    t = rng.integers(0, 3, 12)
    net = cdl.Sequential([L.Flatten(), L.Affine(16, 3, rng=0)], loss=L.SoftmaxCrossEntropy())
    trainer = cdl.Trainer(net, cdl.optim.SGD(lr=0.1), batch_size=4, epochs=2, seed=0,
                          augment=A.Compose([A.CutMix(num_classes=3), A.MixUp(num_classes=3)]),
                          verbose=False)
    assert np.isfinite(trainer.fit(x, t)["loss"]).all()


def test_transforms_never_modify_their_input_and_are_seeded(rng):
    x = images(rng)
    t = rng.integers(0, 3, 6)
    keep_x, keep_t = x.copy(), t.copy()
    every = [A.HorizontalFlip(), A.VerticalFlip(), A.Rotation(), A.Translation(),
             A.RandomResizedCrop(), A.Brightness(), A.Contrast(), A.Saturation(), A.Hue(),
             A.Gamma(), A.GaussianNoise(), A.Cutout(3), A.RandomErasing(value="random"),
             A.MixUp(num_classes=3), A.CutMix(num_classes=3)]
    for tr in every + [A.Compose(every)]:
        a = tr(x, t, np.random.default_rng(5))
        b = tr(x, t, np.random.default_rng(5))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[0].dtype == np.float32
        np.testing.assert_array_equal(x, keep_x)
        np.testing.assert_array_equal(t, keep_t)
    cdl.seed(3)
    first = A.Rotation()(x)[0]
    cdl.seed(3)
    np.testing.assert_array_equal(A.Rotation()(x)[0], first)


class _Spy:
    """A model stand-in recording every batch the Trainer trains and evaluates on."""

    def __init__(self, net):
        self.net, self.trained, self.evaluated = net, [], []
        self.loss_layer = net.loss_layer

    def loss(self, x, t):
        self.trained.append(x.copy())
        return self.net.loss(x, t)

    def backward(self, input_grad=True):
        return self.net.backward(input_grad=input_grad)

    def predict(self, x, batch_size=None):
        self.evaluated.append(x.copy())
        return self.net.predict(x, batch_size)

    def accuracy(self, x, t, batch_size=1000):
        self.evaluated.append(x.copy())
        return self.net.accuracy(x, t, batch_size)

    @property
    def params(self):
        return self.net.params

    @property
    def grads(self):
        return self.net.grads


def test_trainer_augments_training_batches_only(rng):
    """No leakage: every evaluated batch is the given data, untouched; training batches differ."""
    x = images(rng, (20, 1, 6, 6))
    t = rng.integers(0, 2, 20)
    xv = images(rng, (10, 1, 6, 6))
    tv = rng.integers(0, 2, 10)
    keep_x, keep_xv = x.copy(), xv.copy()
    spy = _Spy(cdl.Sequential([L.Flatten(), L.Affine(36, 2, rng=0)], loss=L.SoftmaxCrossEntropy()))
    aug = A.Compose([A.GaussianNoise(0.5), A.Cutout(3)])
    cdl.Trainer(spy, cdl.optim.SGD(lr=0.1), batch_size=5, epochs=2, seed=0, augment=aug,
                verbose=False).fit(x, t, validation_data=(xv, tv))
    assert len(spy.trained) == 8 and spy.evaluated
    rows = {r.tobytes() for r in np.concatenate([x, xv])}
    for batch in spy.trained:  # augmented: no training row survives unchanged
        assert not any(r.tobytes() in rows for r in batch)
    for batch in spy.evaluated:  # evaluation: exactly rows of the given data
        assert all(r.tobytes() in rows for r in batch)
    assert any(np.array_equal(b, xv) for b in spy.evaluated)
    np.testing.assert_array_equal(x, keep_x)
    np.testing.assert_array_equal(xv, keep_xv)


# -- bad input ---------------------------------------------------------------
ALL = [A.HorizontalFlip, A.VerticalFlip, A.Rotation, A.Translation, A.RandomResizedCrop,
       A.Brightness, A.Contrast, A.Saturation, A.Hue, A.Gamma, A.GaussianNoise, A.Cutout,
       A.RandomErasing, A.MixUp, A.CutMix]


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("p", [-0.1, 1.5, "1", None])
def test_p_outside_unit_interval(cls, p):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: p must be a number in \[0, 1\]"):
        cls(p=p)


@pytest.mark.parametrize("shape,match", [
    ((4, 64), r"expected an \(N, C, H, W\) image batch.*reshape flat images"),
    ((4, 8, 8), r"add the channel axis"),
    ((4, 8, 8, 3), "looks channels-last"),
    ((0, 1, 8, 8), "empty batch"),
])
def test_wrong_layout(shape, match):
    with pytest.raises(ValueError, match=match):
        A.Compose([A.HorizontalFlip()])(np.zeros(shape, np.float32))


def test_two_channel_images_are_not_mistaken_for_channels_last(rng):
    x = images(rng, (2, 2, 5, 3))
    y, _ = A.Compose([A.Contrast(0.5), A.HorizontalFlip(p=1)])(x, None, rng)
    assert y.shape == x.shape


def test_wrong_dtype_and_rgb_only_transforms():
    with pytest.raises(ValueError, match="float32 or float64"):
        A.Rotation()(np.zeros((2, 1, 4, 4), np.uint8))
    for tr in (A.Hue(), A.Saturation()):
        with pytest.raises(ValueError, match=r"needs RGB images \(N, 3, H, W\)"):
            tr(np.zeros((2, 1, 4, 4), np.float32))


@pytest.mark.parametrize("boxes", [[[0, 7, 0, 1]], [[-1, 2, 0, 1]], [[3, 2, 0, 1]], [[0, 1, 0, 6]]])
def test_check_boxes_refuses_boxes_outside(boxes):
    with pytest.raises(ValueError, match="boxes must satisfy"):
        A.check_boxes("test", np.array(boxes), (1, 1, 6, 5))


def test_warp_validates_its_arguments():
    x = np.zeros((2, 1, 4, 4), np.float32)
    eye = np.tile(np.eye(3), (2, 1, 1))
    with pytest.raises(ValueError, match=r"need finite matrices of shape \(2, 3, 3\)"):
        A.warp(x, eye[:1], np.ones(2, bool))
    with pytest.raises(ValueError, match="need finite matrices"):
        A.warp(x, eye * np.nan, np.ones(2, bool))
    with pytest.raises(ValueError, match=r"active must have shape \(2,\)"):
        A.warp(x, eye, np.ones(3, bool))
    with pytest.raises(ValueError, match="expected an"):
        A.warp(x[0], eye, np.ones(2, bool))


def test_bad_targets_for_mixing():
    x = np.zeros((3, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="integer labels need num_classes"):
        A.MixUp()(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        A.CutMix(num_classes=3)(x, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="2 targets for a batch of 3"):
        A.MixUp(num_classes=3)(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="call it with"):
        A.MixUp(num_classes=3)(x)


@pytest.mark.parametrize("make,match", [
    (lambda: A.Rotation(degrees=(10, -10)), "degrees must satisfy"),
    (lambda: A.Translation(max_shift=1.5), "max_shift must be a fraction"),
    (lambda: A.RandomResizedCrop(scale=(0, 1)), "scale must satisfy"),
    (lambda: A.Brightness(2.0), r"strength must be a number in \[0, 1\]"),
    (lambda: A.Hue(0.7), "shift must satisfy"),
    (lambda: A.Cutout(0), "size must be a positive int"),
    (lambda: A.RandomErasing(value="noise"), "value must be a number or 'random'"),
    (lambda: A.MixUp(alpha=0), "alpha must be a positive number"),
    (lambda: A.CutMix(num_classes=1), "num_classes must be an int >= 2"),
    (lambda: A.Compose([A.HorizontalFlip(), lambda x, t, r: (x, t)]), "item 1 is function"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
