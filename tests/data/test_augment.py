"""cdl.data.augment: each transform's effect, p, seeding, Compose, Trainer, bad input."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.data import augment as A


def images(rng, shape=(6, 3, 8, 8), low=0.1, high=0.9):
    return rng.uniform(low, high, shape).astype(np.float32)


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


def test_every_family_is_reexported_here():
    from cdl.data import erasing, geometric, masking, mixing, photometric
    families = {m.__name__: m for m in (erasing, geometric, masking, mixing, photometric)}
    homes = {name: getattr(A, name).__module__ for name in A.__all__}
    assert set(homes.values()) == {"cdl.data.augment", *families}
    for name, home in homes.items():
        if home != "cdl.data.augment":
            assert getattr(families[home], name) is getattr(A, name)
