"""ReLU, LeakyReLU, Sigmoid, Tanh, Step, Softmax and softmax(): values, derivatives, bad input."""
import numpy as np
import pytest

from cdl import layers as L
from cdl.layers.activation import softmax


def test_activations_values():
    x = np.array([[-2.0, -0.5, 0.5, 3.0]])
    np.testing.assert_allclose(L.ReLU().forward(x), [[0, 0, 0.5, 3]])
    np.testing.assert_allclose(L.LeakyReLU(0.1).forward(x), [[-0.2, -0.05, 0.5, 3]])
    np.testing.assert_allclose(L.Sigmoid().forward(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(L.Tanh().forward(x), np.tanh(x))
    np.testing.assert_allclose(L.Step().forward(x), [[0, 0, 1, 1]])
    s = L.Softmax().forward(x)
    np.testing.assert_allclose(s, np.exp(x) / np.exp(x).sum())
    big = L.Sigmoid().forward(np.array([[-1000.0, 1000.0]]))
    np.testing.assert_allclose(big, [[0, 1]])
    assert np.isfinite(L.Softmax().forward(np.array([[1e4, -1e4, 0.0]]))).all()


def test_activation_derivatives():
    x = np.array([[-2.0, -0.5, 0.5, 3.0]])
    dout = np.array([[1.0, 2.0, 3.0, 4.0]])

    def grad(layer):
        layer.forward(x)
        return layer.backward(dout)

    np.testing.assert_allclose(grad(L.ReLU()), [[0, 0, 3, 4]])
    np.testing.assert_allclose(grad(L.LeakyReLU(0.1)), [[0.1, 0.2, 3, 4]])
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(grad(L.Sigmoid()), dout * s * (1 - s), rtol=1e-12)
    np.testing.assert_allclose(grad(L.Tanh()), dout * (1 - np.tanh(x) ** 2), rtol=1e-12)
    np.testing.assert_array_equal(grad(L.Step()), np.zeros_like(x))
    y = np.exp(x) / np.exp(x).sum()
    np.testing.assert_allclose(grad(L.Softmax()), y * (dout - (dout * y).sum()), rtol=1e-12)


def test_softmax_is_over_the_last_axis_of_any_rank(rng):
    x = rng.standard_normal((2, 3, 5))
    y = L.Softmax().forward(x)
    np.testing.assert_allclose(y.sum(axis=-1), np.ones((2, 3)), rtol=1e-12)
    np.testing.assert_allclose(softmax(x), y)


def test_softmax_function_takes_lists_and_ints():
    y = softmax([[1, 2, 3]])
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, np.exp([[1, 2, 3]]) / np.exp([1, 2, 3]).sum())
    assert softmax(np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_non_array_input_is_refused():
    with pytest.raises(ValueError, match="NumPy array"):
        L.ReLU().forward([1.0, 2.0])


def test_negative_leak_is_refused():
    with pytest.raises(ValueError):
        L.LeakyReLU(-0.1)
