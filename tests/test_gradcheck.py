"""cdl.gradcheck: the checker passes true gradients and catches wrong ones."""
import numpy as np
import pytest

from cdl import layers as L
from cdl.gradcheck import check_layer, numerical_gradient


class _ScaledDx(L.Affine):
    """Affine whose dx is off by a factor: a wrong gradient the checker must catch."""

    def backward(self, dout):
        return 1.01 * super().backward(dout)


def test_numerical_gradient_of_a_quadratic_restores_x(rng):
    c = rng.standard_normal((3, 4))
    x = rng.standard_normal((3, 4))
    before = x.copy()
    grad = numerical_gradient(lambda: float((c * x ** 2).sum()), x)
    np.testing.assert_allclose(grad, 2 * c * x, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("directions", [None, 4])
def test_true_gradients_pass(rng, directions):
    layer = L.Affine(5, 3, rng=rng)
    got = check_layer(layer, rng.standard_normal((2, 5)), directions=directions)
    assert set(got) == {"x", "W", "b"}
    assert got["W"].dtype == np.float64 and got["W"].shape == (5, 3)


@pytest.mark.parametrize("directions", [None, 4])
def test_wrong_dx_is_caught_and_named(rng, directions):
    layer = _ScaledDx(5, 3, rng=rng)
    with pytest.raises(AssertionError, match=r"gradient check failed for _ScaledDx\.x"):
        check_layer(layer, rng.standard_normal((2, 5)), directions=directions)


def test_wrt_checks_only_the_named_arrays(rng):
    layer = _ScaledDx(5, 3, rng=rng)
    check_layer(layer, rng.standard_normal((2, 5)), wrt=("W", "b"))  # dx, the wrong one, skipped


@pytest.mark.parametrize("x", [np.arange(3), [0.0, 1.0], np.arange(3).astype(np.bool_)])
def test_numerical_gradient_needs_a_float_array(x):
    """x + h truncated to an integer would give a zero gradient that looks like an answer."""
    with pytest.raises(ValueError, match="numerical_gradient: x must be a float NumPy array"):
        numerical_gradient(lambda: 0.0, x)
