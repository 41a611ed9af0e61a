"""cdl.kernels.dropout: inverted-dropout masks, Gaussian noise and masking, drawn from the
generator passed in."""
import numpy as np
import pytest

from cdl.kernels import dropout as K


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask_is_inverted_and_follows_the_stated_draw(dtype):
    out = np.empty((200, 50), dtype)
    assert K.dropout_mask(np.random.default_rng(0), 0.3, out) is out
    u = np.random.default_rng(0).random((200, 50), dtype=np.float32)
    np.testing.assert_array_equal(out, np.where(u >= 0.3, dtype(1 / 0.7), 0).astype(dtype))
    assert abs(out.mean() - 1) < 0.02  # E[mask] = 1
    assert set(np.unique(out)) == {0, dtype(1 / 0.7)}


def test_ratio_zero_keeps_everything():
    np.testing.assert_array_equal(K.dropout_mask(np.random.default_rng(0), 0.0, np.empty(9)),
                                  np.ones(9))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_noise(dtype):
    out = np.empty(20000, dtype)
    rng = np.random.default_rng(1)
    assert K.gaussian_noise(rng, 0.5, out) is out and out.dtype == dtype
    np.testing.assert_allclose(out, 0.5 * np.random.default_rng(1).standard_normal(20000, dtype=dtype),
                               rtol=1e-6)
    assert abs(out.std() - 0.5) < 0.01


def test_the_generator_moves_on():
    rng = np.random.default_rng(2)
    a = K.dropout_mask(rng, 0.5, np.empty(64))
    b = K.dropout_mask(rng, 0.5, np.empty(64))
    assert not np.array_equal(a, b)


def test_apply_mask_in_place():
    x = np.array([1.0, 2.0, 3.0])
    assert K.apply_mask(x, np.array([0.0, 2.0, 1.0]), x) is x
    np.testing.assert_array_equal(x, [0, 4, 3])
