"""Forward values, dtypes and bad input of the core layers."""
import numpy as np
import pytest

from cdl import layers as L
from cdl.kernels import reference as ref


def test_affine_forward_is_xw_plus_b(rng):
    layer = L.Affine(6, 3)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    y = layer.forward(x)
    want = x.reshape(4, 6) @ layer.params["W"] + layer.params["b"]
    np.testing.assert_allclose(y, want, rtol=1e-6)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).shape == x.shape


def test_conv_forward_matches_reference_and_keeps_dtype(rng):
    layer = L.Conv2D(3, 4, 3, stride=2, pad=1)
    layer.params["b"][:] = rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(y, ref.conv2d_forward(x, layer.params["W"], layer.params["b"], 2, 2, 1, 1),
                               rtol=1e-4, atol=1e-5)


def test_float64_input_computes_in_float64(rng):
    layer = L.Conv2D(1, 2, 3)
    y = layer.forward(rng.standard_normal((1, 1, 4, 4)))
    assert y.dtype == np.float64
    layer.backward(np.ones_like(y))
    assert layer.grads["W"].dtype == layer.params["W"].dtype == np.float32


def test_layer_reads_params_at_every_call(rng):
    layer = L.Affine(3, 2)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    layer.params["W"] = np.zeros((3, 2), np.float32)
    layer.params["b"] = np.ones(2, np.float32)
    np.testing.assert_array_equal(layer.forward(x), np.ones((2, 2)))


def test_backward_does_not_modify_dout(rng):
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    for layer in [L.Conv2D(2, 3, 3, pad=1), L.ReLU(), L.MaxPool2D(2), L.Sigmoid(), L.Softmax()]:
        y = layer.forward(x if not isinstance(layer, L.Softmax) else x.reshape(2, -1))
        dout = rng.standard_normal(y.shape).astype(np.float32)
        keep = dout.copy()
        layer.backward(dout)
        np.testing.assert_array_equal(dout, keep)


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


def test_global_avg_pool():
    x = np.arange(24, dtype=np.float64).reshape(1, 2, 3, 4)
    np.testing.assert_allclose(L.GlobalAvgPool2D().forward(x), [[5.5, 17.5]])


@pytest.mark.parametrize("make, x, match", [
    (lambda: L.Conv2D(3, 4, 3), np.zeros((2, 3, 5), np.float32), "4-D"),
    (lambda: L.Conv2D(3, 4, 3), np.zeros((2, 2, 5, 5), np.float32), "2 channels, expected 3"),
    (lambda: L.Conv2D(1, 4, 5), np.zeros((1, 1, 3, 3), np.float32), "larger than the padded input"),
    (lambda: L.Conv2D(1, 1, 3), np.zeros((1, 1, 5, 5), np.int64), "float32 or float64"),
    (lambda: L.Conv2D(1, 1, 3), np.zeros((0, 1, 5, 5), np.float32), "empty batch"),
    (lambda: L.Affine(6, 2), np.zeros((3, 5), np.float32), "5 features per sample, expected 6"),
    (lambda: L.Affine(6, 2), np.zeros((3, 6), np.uint8), "float32 or float64"),
    (lambda: L.MaxPool2D(2), np.zeros((2, 4, 4), np.float32), "4-D"),
    (lambda: L.MaxPool2D(5), np.zeros((1, 1, 3, 3), np.float32), "larger than the padded input"),
    (lambda: L.AvgPool2D(2), np.zeros((1, 1, 4, 4), np.int32), "float32 or float64"),
    (lambda: L.ReLU(), [1.0, 2.0], "NumPy array"),
])
def test_bad_input_names_layer_and_shapes(make, x, match):
    with pytest.raises(ValueError, match=match):
        make().forward(x)


@pytest.mark.parametrize("make", [
    lambda: L.Conv2D(1, 1, 3, stride=0),
    lambda: L.Conv2D(1, 1, 3, stride=-2),
    lambda: L.Conv2D(1, 1, 3, pad=-1),
    lambda: L.Conv2D(0, 1, 3),
    lambda: L.Conv2D(1, 1, 0),
    lambda: L.Affine(0, 3),
    lambda: L.Affine(2.5, 3),
    lambda: L.MaxPool2D(2, stride=0),
    lambda: L.MaxPool2D(2, pad=2),
    lambda: L.LeakyReLU(-0.1),
])
def test_bad_constructor_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_noncontiguous_input_is_accepted(rng):
    layer = L.Conv2D(2, 3, 3, pad=1)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    xt = x.transpose(0, 1, 3, 2)
    np.testing.assert_allclose(layer.forward(xt), layer.forward(np.ascontiguousarray(xt)))


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before forward"):
        L.Conv2D(1, 1, 3).backward(np.zeros((1, 1, 1, 1), np.float32))


def test_dout_of_the_wrong_shape(rng):
    layer = L.Affine(3, 2)
    layer.forward(rng.standard_normal((4, 3)).astype(np.float32))
    with pytest.raises(ValueError, match=r"dout has shape \(4, 3\)"):
        layer.backward(np.zeros((4, 3), np.float32))


@pytest.mark.parametrize("make, match", [
    (lambda: L.Conv2D(1, 1, 3, stride=2**31), r"Conv2D: stride = 2147483648 is too large"),
    (lambda: L.Conv2D(1, 1, 3, pad=2**31), r"Conv2D: pad = 2147483648 is too large"),
    (lambda: L.Conv2D(1, 1, (3, 2**31)), r"Conv2D: kernel_size = 2147483648 is too large"),
    (lambda: L.Conv2D(1, 1, 3, stride=2.0), r"Conv2D: stride must be a positive int, got 2\.0"),
    (lambda: L.MaxPool2D(2, stride=2**31), r"MaxPool2D: stride = 2147483648 is too large"),
    (lambda: L.AvgPool2D(2**31), r"AvgPool2D: pool_size = 2147483648 is too large"),
    (lambda: L.AvgPool2D(2, pad=0.5), r"AvgPool2D: pad must be an int >= 0, got 0\.5"),
])
def test_geometry_beyond_int32_or_not_int_is_a_value_error(make, match):
    """Issue 17: these raised OverflowError in the compiled call (or were accepted)."""
    with pytest.raises(ValueError, match=match):
        make().forward(np.zeros((1, 1, 4, 4), np.float32))


def test_conv_output_beyond_int32_is_refused_before_allocating():
    layer = L.Conv2D(1, 1, 3, pad=2**30)
    with pytest.raises(ValueError, match=r"Conv2D\(1, 1, .*output of 2147483650x2147483650"):
        layer.forward(np.zeros((1, 1, 4, 4), np.float32))


def test_geometry_takes_numpy_ints():
    layer = L.Conv2D(np.int64(1), 2, np.int32(3), stride=np.int64(2), pad=np.uint8(1))
    assert layer.stride == (2, 2) and type(layer.stride[0]) is int
    assert layer.forward(np.zeros((1, 1, 5, 5), np.float32)).shape == (1, 2, 3, 3)
