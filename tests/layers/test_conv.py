"""Conv2D: forward against the reference, dtypes, geometry checks and bad input."""
import numpy as np
import pytest

from cdl import layers as L
from cdl.kernels import reference as ref


def test_conv_forward_matches_reference_and_keeps_dtype(rng):
    layer = L.Conv2D(3, 4, 3, stride=2, pad=1)
    layer.params["b"][:] = rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(y, ref.conv2d_forward(x, layer.params["W"], layer.params["b"], 2, 2, 1, 1),
                               rtol=1e-4, atol=1e-5)


def test_conv_backward_matches_reference(rng):
    layer = L.Conv2D(2, 3, 3, stride=1, pad=1)
    x = rng.standard_normal((2, 2, 5, 5))
    layer.astype(np.float64)
    y = layer.forward(x)
    dout = rng.standard_normal(y.shape)
    dx = layer.backward(dout)
    want_dx, want_dW, want_db = ref.conv2d_backward(dout, x, layer.params["W"], 1, 1, 1, 1)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], want_dW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], want_db, rtol=1e-10, atol=1e-12)


def test_float64_input_computes_in_float64(rng):
    layer = L.Conv2D(1, 2, 3)
    y = layer.forward(rng.standard_normal((1, 1, 4, 4)))
    assert y.dtype == np.float64
    layer.backward(np.ones_like(y))
    assert layer.grads["W"].dtype == layer.params["W"].dtype == np.float32


@pytest.mark.parametrize("make, x, match", [
    (lambda: L.Conv2D(3, 4, 3), np.zeros((2, 3, 5), np.float32), "4-D"),
    (lambda: L.Conv2D(3, 4, 3), np.zeros((2, 2, 5, 5), np.float32), "2 channels, expected 3"),
    (lambda: L.Conv2D(1, 4, 5), np.zeros((1, 1, 3, 3), np.float32), "larger than the padded input"),
    (lambda: L.Conv2D(1, 1, 3), np.zeros((1, 1, 5, 5), np.int64), "float32 or float64"),
    (lambda: L.Conv2D(1, 1, 3), np.zeros((0, 1, 5, 5), np.float32), "empty batch"),
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
])
def test_bad_constructor_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_noncontiguous_input_is_accepted(rng):
    layer = L.Conv2D(2, 3, 3, pad=1)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    xt = x.transpose(0, 1, 3, 2)
    np.testing.assert_allclose(layer.forward(xt), layer.forward(np.ascontiguousarray(xt)))


@pytest.mark.parametrize("make, match", [
    (lambda: L.Conv2D(1, 1, 3, stride=2**31), r"Conv2D: stride = 2147483648 is too large"),
    (lambda: L.Conv2D(1, 1, 3, pad=2**31), r"Conv2D: pad = 2147483648 is too large"),
    (lambda: L.Conv2D(1, 1, (3, 2**31)), r"Conv2D: kernel_size = 2147483648 is too large"),
    (lambda: L.Conv2D(1, 1, 3, stride=2.0), r"Conv2D: stride must be a positive int, got 2\.0"),
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
