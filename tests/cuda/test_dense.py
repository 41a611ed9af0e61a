"""CUDA dense twins against the CPU kernels, and Affine on the GPU against the CPU."""
import numpy as np
import pytest

import cdl
from cdl import kernels as CPU
from cdl import layers as L
from cdl.backend import is_device_array, kernels_for

from ..conftest import host, on


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def check_layer_on_device(make, x, device, seed=0):
    """Two layers from make() (equal parameters): the one on ``device`` gives the CPU one's
    forward, input gradient and parameter gradients, in the input's dtype, and keeps its
    outputs and grads on its device."""
    ref, layer = make(), make()
    if device == "cuda":
        for k, v in layer.params.items():
            layer.params[k] = cdl.cuda.to_device(v)
    t = tol(x.dtype)
    y, yd = ref.forward(x), layer.forward(on(device, x))
    assert is_device_array(yd) == (device == "cuda") and yd.dtype == y.dtype
    np.testing.assert_allclose(host(yd), y, **t)
    dout = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    dx, dxd = ref.backward(dout), layer.backward(on(device, dout))
    assert is_device_array(dxd) == (device == "cuda") and dxd.shape == x.shape
    np.testing.assert_allclose(host(dxd), dx, **t)
    assert set(layer.grads) == set(ref.grads)
    for k, g in ref.grads.items():
        assert type(layer.grads[k]) is type(layer.params[k]), k  # grads on the params' device
        np.testing.assert_allclose(host(layer.grads[k]), g, **t, err_msg=k)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_dx", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_kernels_match_cpu(bias, with_dx, dtype):
    rng = np.random.default_rng(0)
    N, D, O = 3, 5, 4
    x, W = rng.standard_normal((N, D)).astype(dtype), rng.standard_normal((D, O)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    d = rng.standard_normal((N, O)).astype(dtype)
    y = CPU.affine_forward(x, W, b, np.empty((N, O), dtype))
    dx, dW, db = CPU.affine_backward(d, x, W, np.empty((N, D), dtype) if with_dx else None,
                                     np.empty((D, O), dtype), np.empty(O, dtype) if bias else None)
    xg, Wg, bg, dg = on("cuda", x, W, b, d)
    K = kernels_for(xg)
    yg = K.affine_forward(xg, Wg, bg, K.empty((N, O), dtype))
    dxg, dWg, dbg = K.affine_backward(dg, xg, Wg, K.empty((N, D), dtype) if with_dx else None,
                                      K.empty((D, O), dtype), K.empty(O, dtype) if bias else None)
    t = tol(dtype)
    np.testing.assert_allclose(host(yg), y, **t)
    np.testing.assert_allclose(host(dWg), dW, **t)
    assert (dxg is None) == (not with_dx) and (dbg is None) == (not bias)
    if with_dx:
        np.testing.assert_allclose(host(dxg), dx, **t)
    if bias:
        np.testing.assert_allclose(host(dbg), db, **t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_layer_on_device(device, dtype):
    """4-D input flattened per sample, as after a conv; float64 input to float32 weights too."""
    x = np.random.default_rng(1).standard_normal((2, 2, 2, 3)).astype(dtype)
    check_layer_on_device(lambda: L.Affine(12, 5, rng=7), x, device)


def test_affine_layer_without_bias_backward_params(device):
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    ref, layer = L.Affine(4, 2, bias=False, rng=3), L.Affine(4, 2, bias=False, rng=3)
    if device == "cuda":
        layer.params["W"] = cdl.cuda.to_device(layer.params["W"])
    d = np.ones((3, 2), np.float32)
    ref.forward(x), layer.forward(on(device, x))
    ref.backward_params(d), layer.backward_params(on(device, d))
    assert list(layer.grads) == ["W"]
    np.testing.assert_allclose(host(layer.grads["W"]), ref.grads["W"], rtol=1e-6)
