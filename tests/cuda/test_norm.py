"""CUDA BatchNorm twins against the CPU kernels (the simulator without a GPU), and the layer
on the device against the layer on the CPU."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl import layers as L
from cdl.backend import kernels_for

from ..conftest import host, on

SHAPES = [(5, 3, 1), (2, 3, 6), (1, 2, 5)]  # (N, C, L): an (N, D) batch, images, one image


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    d = rng.standard_normal(shape).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    return x, d, gamma, beta


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_forward_and_backward_match_cpu(shape, dtype):
    x, d, gamma, beta = _inputs(shape, dtype)
    C = shape[1]
    y, mean, var = CPU.batchnorm_forward(x, gamma, beta, 1e-5, np.empty_like(x), np.empty(C),
                                         np.empty(C), np.empty((5, C), dtype))
    inv_std = CPU.batchnorm_inv_std(var, 1e-5, np.empty(C))
    dx, dg, db = CPU.batchnorm_backward(d, x, mean, inv_std, gamma, True, np.empty_like(x),
                                        np.empty(C), np.empty(C), np.empty((5, C), dtype))
    xg, dg_, gg, bg = on("cuda", x, d, gamma, beta)
    K = kernels_for(xg)
    yk, mk, vk = K.batchnorm_forward(xg, gg, bg, 1e-5, K.empty_like(xg), K.empty(C, np.float64),
                                     K.empty(C, np.float64), K.empty((5, C), dtype))
    ik = K.batchnorm_inv_std(vk, 1e-5, K.empty(C, np.float64))
    dxk, dgk, dbk = K.batchnorm_backward(dg_, xg, mk, ik, gg, True, K.empty_like(xg),
                                         K.empty(C, np.float64), K.empty(C, np.float64),
                                         K.empty((5, C), dtype))
    np.testing.assert_allclose(host(mk), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(vk), var, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(ik), inv_std, rtol=1e-10)
    np.testing.assert_allclose(host(yk), y, **_tol(dtype))
    np.testing.assert_allclose(host(dxk), dx, **_tol(dtype))
    np.testing.assert_allclose(host(dgk), dg, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(dbk), db, rtol=1e-10, atol=1e-10)
    assert host(yk).dtype == dtype and host(dxk).dtype == dtype


@pytest.mark.parametrize("shape", SHAPES[:2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inference_apply_and_fixed_statistics_backward_match_cpu(shape, dtype):
    x, d, gamma, beta = _inputs(shape, dtype, seed=1)
    C = shape[1]
    rng = np.random.default_rng(2)
    running_mean = rng.standard_normal(C).astype(dtype)
    running_var = rng.uniform(0.2, 3.0, C).astype(dtype)
    mean = running_mean.astype(np.float64)
    inv_std = CPU.batchnorm_inv_std(running_var, 1e-3, np.empty(C))
    y = CPU.batchnorm_apply(x, mean, inv_std, gamma, beta, np.empty_like(x),
                            np.empty((5, C), dtype))
    dx, dg, db = CPU.batchnorm_backward(d, x, mean, inv_std, gamma, False, np.empty_like(x),
                                        np.empty(C), np.empty(C), np.empty((5, C), dtype))
    xg, dg_, gg, bg, rmg, rvg = on("cuda", x, d, gamma, beta, running_mean, running_var)
    K = kernels_for(xg)
    mk = K.copy(rmg, K.empty(C, np.float64))
    ik = K.batchnorm_inv_std(rvg, 1e-3, K.empty(C, np.float64))
    yk = K.batchnorm_apply(xg, mk, ik, gg, bg, K.empty_like(xg), K.empty((5, C), dtype))
    dxk, dgk, dbk = K.batchnorm_backward(dg_, xg, mk, ik, gg, False, K.empty_like(xg),
                                         K.empty(C, np.float64), K.empty(C, np.float64),
                                         K.empty((5, C), dtype))
    np.testing.assert_allclose(host(ik), inv_std, rtol=1e-12)
    np.testing.assert_allclose(host(yk), y, **_tol(dtype))
    np.testing.assert_allclose(host(dxk), dx, **_tol(dtype))
    np.testing.assert_allclose(host(dgk), dg, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(dbk), db, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_running_update_matches_cpu_exactly(dtype):
    rng = np.random.default_rng(3)
    mean, var = rng.standard_normal(6), rng.uniform(0.1, 2.0, 6)
    rm, rv = rng.standard_normal(6).astype(dtype), rng.uniform(0.5, 1.5, 6).astype(dtype)
    rmg, rvg, mg, vg = on("cuda", rm, rv, mean, var)
    CPU.batchnorm_running_update(mean, var, 0.9, 12 / 11, rm, rv)
    kernels_for(rmg).batchnorm_running_update(mg, vg, 0.9, 12 / 11, rmg, rvg)
    np.testing.assert_array_equal(host(rmg), rm)
    np.testing.assert_array_equal(host(rvg), rv)


@pytest.mark.slow  # seconds in the CUDA simulator
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_on_the_device_matches_the_cpu(device, shape, dtype):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(shape) + 1).astype(dtype)
    d = rng.standard_normal(shape).astype(dtype)
    ref, bn = L.BatchNorm(3, momentum=0.8), L.BatchNorm(3, momentum=0.8)
    for layer in (ref, bn):
        layer.params["gamma"][:] = [0.5, 1.0, 2.0]
        layer.params["beta"][:] = [0.1, -0.2, 0.3]
    if device == "cuda":
        bn.to_device()
    tol = _tol(dtype)
    y, yk = ref.forward(x), bn.forward(on(device, x))
    np.testing.assert_allclose(host(yk), y, **tol)
    np.testing.assert_allclose(host(bn.backward(on(device, d))), ref.backward(d), **tol)
    for k in ("gamma", "beta"):
        assert type(bn.grads[k]) is type(bn.params[k])  # grads stay on the params' device
        np.testing.assert_allclose(host(bn.grads[k]), ref.grads[k], rtol=1e-5, atol=1e-5)
    for k in ("running_mean", "running_var"):
        np.testing.assert_allclose(host(bn.buffers[k]), ref.buffers[k], rtol=1e-6)
    np.testing.assert_allclose(host(bn.forward(on(device, x), train=False)),
                               ref.forward(x, train=False), **tol)
    bn.running_var = np.full(3, 2.0)  # the setter copies host values onto the device buffer
    np.testing.assert_array_equal(host(bn.running_var), 2.0)
