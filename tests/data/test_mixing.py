"""cdl.data.mixing: MixUp and CutMix mix pixels and targets alike, and refuse bad targets."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.data import augment as A

from .test_augment import images


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
