"""Affine and Flatten: y = x W + b on flattened samples, gradients, bad input."""
import numpy as np
import pytest

from cdl import layers as L


def test_affine_forward_is_xw_plus_b(rng):
    layer = L.Affine(6, 3)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    y = layer.forward(x)
    want = x.reshape(4, 6) @ layer.params["W"] + layer.params["b"]
    np.testing.assert_allclose(y, want, rtol=1e-6)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).shape == x.shape


def test_affine_backward_is_the_books(rng):
    layer = L.Affine(6, 3).astype(np.float64)
    x = rng.standard_normal((4, 2, 3))
    dout = rng.standard_normal((4, 3))
    layer.forward(x)
    dx = layer.backward(dout)
    W = layer.params["W"]
    np.testing.assert_allclose(dx, (dout @ W.T).reshape(x.shape), rtol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], x.reshape(4, 6).T @ dout, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=0), rtol=1e-12)


def test_backward_params_fills_the_same_grads_as_backward(rng):
    a, b = L.Affine(5, 2), L.Affine(5, 2)
    b.params = {k: v.copy() for k, v in a.params.items()}
    x = rng.standard_normal((3, 5)).astype(np.float32)
    dout = rng.standard_normal((3, 2)).astype(np.float32)
    a.forward(x), b.forward(x)
    a.backward(dout)
    b.backward_params(dout)
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])


def test_flatten_round_trips(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    layer = L.Flatten()
    y = layer.forward(x)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(y, x.reshape(2, 60))
    np.testing.assert_array_equal(layer.backward(y), x)
    with pytest.raises(ValueError, match=r"Flatten: dout has shape \(2, 59\)"):
        layer.backward(np.zeros((2, 59), np.float32))


@pytest.mark.parametrize("make, x, match", [
    (lambda: L.Affine(6, 2), np.zeros((3, 5), np.float32), "5 features per sample, expected 6"),
    (lambda: L.Affine(6, 2), np.zeros((3, 6), np.uint8), "float32 or float64"),
])
def test_bad_input_names_layer_and_shapes(make, x, match):
    with pytest.raises(ValueError, match=match):
        make().forward(x)


@pytest.mark.parametrize("make", [
    lambda: L.Affine(0, 3),
    lambda: L.Affine(2.5, 3),
])
def test_bad_constructor_arguments(make):
    with pytest.raises(ValueError):
        make()
