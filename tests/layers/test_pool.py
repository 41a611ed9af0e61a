"""MaxPool2D, AvgPool2D, GlobalAvgPool2D: values against the reference, padding, bad input."""
import numpy as np
import pytest

from cdl import layers as L
from cdl.kernels import reference as ref


@pytest.mark.parametrize("cls, forward", [(L.MaxPool2D, ref.maxpool2d_forward),
                                          (L.AvgPool2D, ref.avgpool2d_forward)])
def test_pools_match_the_reference_with_padding(cls, forward, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    layer = cls(3, stride=2, pad=1)
    y = layer.forward(x)
    np.testing.assert_allclose(y, forward(x, 3, 3, 2, 2, 1, 1), rtol=1e-12)
    dout = rng.standard_normal(y.shape)
    want = (ref.maxpool2d_backward(dout, x, 3, 3, 2, 2, 1, 1) if cls is L.MaxPool2D
            else ref.avgpool2d_backward(dout, x.shape, 3, 3, 2, 2, 1, 1))
    np.testing.assert_allclose(layer.backward(dout), want, rtol=1e-12)


def test_max_padding_never_wins_and_avg_divides_by_the_full_window():
    x = -np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(L.MaxPool2D(2, stride=1, pad=1).forward(x), -np.ones((1, 1, 3, 3)))
    # the corner window holds one input pixel and three padding zeros
    assert L.AvgPool2D(2, stride=1, pad=1).forward(x)[0, 0, 0, 0] == -0.25


def test_global_avg_pool():
    x = np.arange(24, dtype=np.float64).reshape(1, 2, 3, 4)
    layer = L.GlobalAvgPool2D()
    np.testing.assert_allclose(layer.forward(x), [[5.5, 17.5]])
    dx = layer.backward(np.array([[12.0, 24.0]]))
    np.testing.assert_allclose(dx, np.concatenate([np.ones((1, 1, 3, 4)), 2 * np.ones((1, 1, 3, 4))], 1))


@pytest.mark.parametrize("make, x, match", [
    (lambda: L.MaxPool2D(2), np.zeros((2, 4, 4), np.float32), "4-D"),
    (lambda: L.MaxPool2D(5), np.zeros((1, 1, 3, 3), np.float32), "larger than the padded input"),
    (lambda: L.AvgPool2D(2), np.zeros((1, 1, 4, 4), np.int32), "float32 or float64"),
    (lambda: L.GlobalAvgPool2D(), np.zeros((1, 4), np.float32), "4-D"),
])
def test_bad_input_names_layer_and_shapes(make, x, match):
    with pytest.raises(ValueError, match=match):
        make().forward(x)


@pytest.mark.parametrize("make", [
    lambda: L.MaxPool2D(2, stride=0),
    lambda: L.MaxPool2D(2, pad=2),
    lambda: L.AvgPool2D(0),
])
def test_bad_constructor_arguments(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: L.MaxPool2D(2, stride=2**31), r"MaxPool2D: stride = 2147483648 is too large"),
    (lambda: L.AvgPool2D(2**31), r"AvgPool2D: pool_size = 2147483648 is too large"),
    (lambda: L.AvgPool2D(2, pad=0.5), r"AvgPool2D: pad must be an int >= 0, got 0\.5"),
])
def test_geometry_beyond_int32_or_not_int_is_a_value_error(make, match):
    """Issue 17: these raised OverflowError in the compiled call (or were accepted)."""
    with pytest.raises(ValueError, match=match):
        make().forward(np.zeros((1, 1, 4, 4), np.float32))
