"""CUDA activation twins against the CPU kernels (the simulator without a GPU)."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl import layers as L
from cdl.backend import kernels_for
from cdl.layers.activation import softmax

from ..conftest import host, on


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_matches_cpu(shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    d = rng.standard_normal(shape).astype(dtype)
    y = CPU.relu_forward(x, np.empty_like(x))
    dx = CPU.relu_backward(d, y, np.empty_like(x))
    xg, dg = on("cuda", x, d)
    K = kernels_for(xg)
    yg = K.relu_forward(xg, K.empty_like(xg))
    dxg = K.relu_backward(dg, yg, K.empty_like(xg))
    np.testing.assert_array_equal(host(yg), y)
    np.testing.assert_array_equal(host(dxg), dx)


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape", [(1,), (3, 5, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_twins_match_cpu(shape, dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    d = rng.standard_normal(shape).astype(dtype)
    xg, dg = on("cuda", x, d)
    G = kernels_for(xg)
    e = np.empty_like
    np.testing.assert_array_equal(host(G.leaky_relu_forward(xg, 0.2, G.empty_like(xg))),
                                  CPU.leaky_relu_forward(x, 0.2, e(x)))
    np.testing.assert_array_equal(host(G.leaky_relu_backward(dg, xg, 0.2, G.empty_like(xg))),
                                  CPU.leaky_relu_backward(d, x, 0.2, e(x)))
    for name in ("sigmoid", "tanh"):
        y = getattr(CPU, f"{name}_forward")(x, e(x))
        yg = getattr(G, f"{name}_forward")(xg, G.empty_like(xg))
        np.testing.assert_allclose(host(yg), y, **_tol(dtype))
        dx = getattr(CPU, f"{name}_backward")(d, y, e(x))
        dxg = getattr(G, f"{name}_backward")(dg, on("cuda", y), G.empty_like(xg))
        np.testing.assert_allclose(host(dxg), dx, **_tol(dtype))
    np.testing.assert_array_equal(host(G.step_forward(xg, G.empty_like(xg))),
                                  CPU.step_forward(x, e(x)))
    np.testing.assert_array_equal(host(G.step_backward(dg, G.empty_like(xg))), np.zeros(shape))


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (5, 1), (6, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_twins_match_cpu(shape, dtype):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x[0, 0] = 1e4  # huge scores stay finite
    d = rng.standard_normal(shape).astype(dtype)
    y = CPU.softmax_forward(x, np.empty_like(x))
    dx = CPU.softmax_backward(d, y, np.empty_like(x))
    xg, dg, yc = on("cuda", x, d, y)
    G = kernels_for(xg)
    np.testing.assert_allclose(host(G.softmax_forward(xg, G.empty_like(xg))), y, **_tol(dtype))
    np.testing.assert_allclose(host(G.softmax_backward(dg, yc, G.empty_like(xg))), dx,
                               **_tol(dtype))


LAYERS = [lambda: L.ReLU(), lambda: L.LeakyReLU(0.1), lambda: L.Sigmoid(), lambda: L.Tanh(),
          lambda: L.Step(), lambda: L.Softmax()]


@pytest.mark.parametrize("make", LAYERS, ids=["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Step",
                                              "Softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_on_the_device_match_the_cpu(device, make, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    d = rng.standard_normal(x.shape)  # float64 dout: backward casts it to the layer's dtype
    cpu, dev = make(), make()
    y, dx = cpu.forward(x), cpu.backward(d)
    yd = dev.forward(on(device, x))
    dd = on(device, d.copy())
    dxd = dev.backward(dd)
    assert kernels_for(yd, dxd) is kernels_for(on(device, x))  # results stay where x was
    assert host(yd).dtype == dtype and host(dxd).dtype == dtype
    np.testing.assert_allclose(host(yd), y, **_tol(dtype))
    np.testing.assert_allclose(host(dxd), dx, **_tol(dtype))
    np.testing.assert_array_equal(host(dd), d)  # dout untouched


def test_softmax_helper_on_the_device():
    x = np.random.default_rng(4).standard_normal((3, 2, 5))
    np.testing.assert_allclose(host(softmax(on("cuda", x))), softmax(x), rtol=1e-12)
