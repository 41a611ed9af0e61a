"""The layer protocol (cdl.layers.base): params read at every call, dout untouched, clear
errors, the registry, held noise, casts."""
import numpy as np
import pytest

from cdl import layers as L
from cdl.backend import kernels_for
from cdl.layers.base import Layer, cast, compute_dtype, registered_layers


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


@pytest.mark.parametrize("layer", [L.Conv2D(1, 1, 3), L.MaxPool2D(2), L.GlobalAvgPool2D(),
                                   L.Flatten(), L.Affine(2, 2)])
def test_backward_before_forward_is_a_clear_error(layer):
    with pytest.raises(RuntimeError, match=f"{type(layer).__name__}: backward called before forward"):
        layer.backward(np.zeros((1, 1, 1, 1), np.float32))


def test_dout_of_the_wrong_shape(rng):
    layer = L.Affine(3, 2)
    layer.forward(rng.standard_normal((4, 3)).astype(np.float32))
    with pytest.raises(ValueError, match=r"dout has shape \(4, 3\)"):
        layer.backward(np.zeros((4, 3), np.float32))


def test_public_subclasses_are_registered_and_private_ones_are_not():
    class Doubler(Layer):
        def forward(self, x, train=True):
            return 2 * x

        def backward(self, dout):
            return 2 * dout

    class _Hidden(Doubler):
        pass

    layers = registered_layers()
    assert layers["Doubler"] is Doubler and "_Hidden" not in layers
    assert layers["Conv2D"] is L.Conv2D
    layers.pop("Conv2D")  # a copy: the registry itself is unchanged
    assert registered_layers()["Conv2D"] is L.Conv2D
    assert repr(Doubler()) == "Doubler()" and repr(L.LeakyReLU(0.5)) == "LeakyReLU(alpha=0.5)"


def test_hold_noise_reuses_the_last_draw_and_restores_the_flag(rng):
    drop = L.Dropout(0.5, rng=1)
    chain = L.Chain(drop)  # the hold passes from a container to its children
    x = np.ones((4, 50), np.float32)
    assert not np.array_equal(drop.forward(x), drop.forward(x))
    with chain.hold_noise():
        a = drop.forward(x)
        np.testing.assert_array_equal(a, drop.forward(x))
    assert drop._noise_held is False
    assert not np.array_equal(a, drop.forward(x))


def test_astype_casts_params_grads_and_buffers():
    bn = L.BatchNorm(3).astype(np.float64)
    for store in (bn.params, bn.grads, bn.buffers):
        assert store and all(v.dtype == np.float64 and v.flags.c_contiguous for v in store.values())


def test_compute_dtype_and_cast():
    f32, f64 = np.zeros(2, np.float32), np.zeros(2, np.float64)
    assert compute_dtype(f32, f32) == np.float32 and compute_dtype(f32, f64) == np.float64
    K = kernels_for(f32)
    assert cast(K, f32, np.float32) is f32
    out = cast(K, np.array([1.5, 2.5], np.float32), np.float64)
    assert out.dtype == np.float64 and out.tolist() == [1.5, 2.5]


def test_the_base_class_is_abstract():
    with pytest.raises(TypeError):
        Layer()
