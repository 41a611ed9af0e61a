"""CUDA noise twins (the simulator without a GPU): mask values and statistics, seeding,
apply_mask against the CPU; the stochastic layers on the device."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl import layers as L
from cdl.backend import is_device_array, kernels_for

from ..conftest import host, on

# numba.cuda.random's xoroshiro128+ wraps uint64 sums on purpose; the simulator runs it on
# NumPy scalars, which warn about every wrap.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


def _K():
    return kernels_for(on("cuda", np.zeros(1)))


@pytest.mark.slow  # seconds in the CUDA simulator
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask_values_statistics_and_seeding(dtype):
    K = _K()
    ratio = 0.3
    out = K.dropout_mask(np.random.default_rng(0), ratio, K.empty((12, 25), dtype))
    mask = host(out)
    assert mask.dtype == dtype and mask.shape == (12, 25)
    scale = dtype(1.0 / (1.0 - ratio))
    assert set(np.unique(mask)) <= {dtype(0), scale}  # exactly the CPU kernel's two values
    assert abs((mask != 0).mean() - (1 - ratio)) < 0.1  # 300 draws: a loose bound
    again = host(K.dropout_mask(np.random.default_rng(0), ratio, K.empty((12, 25), dtype)))
    np.testing.assert_array_equal(again, mask)  # same seed, same mask
    rng = np.random.default_rng(0)
    first = host(K.dropout_mask(rng, ratio, K.empty((12, 25), dtype)))
    assert not np.array_equal(host(K.dropout_mask(rng, ratio, K.empty((12, 25), dtype))), first)
    cpu = CPU.dropout_mask(np.random.default_rng(0), ratio, np.empty((12, 25), dtype))
    assert set(np.unique(cpu)) <= {dtype(0), scale}
    np.testing.assert_array_equal(host(K.dropout_mask(rng, 0.0, K.empty(7, dtype))), 1)


@pytest.mark.slow  # seconds in the CUDA simulator
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_noise_statistics_and_seeding(dtype):
    K = _K()
    noise = host(K.gaussian_noise(np.random.default_rng(1), 0.5, K.empty((300,), dtype)))
    assert noise.dtype == dtype
    assert abs(noise.mean()) < 0.15 and abs(noise.std() - 0.5) < 0.15
    again = host(K.gaussian_noise(np.random.default_rng(1), 0.5, K.empty((300,), dtype)))
    np.testing.assert_array_equal(again, noise)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_mask_matches_cpu(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5)).astype(dtype)
    mask = CPU.dropout_mask(rng, 0.5, np.empty_like(x))
    want = CPU.apply_mask(x, mask, np.empty_like(x))
    xg, mg = on("cuda", x, mask)
    K = kernels_for(xg)
    np.testing.assert_array_equal(host(K.apply_mask(xg, mg, K.empty_like(xg))), want)
    assert K.apply_mask(xg, mg, xg) is xg  # in place
    np.testing.assert_array_equal(host(xg), want)


def test_dropout_layer(device):
    rng = np.random.default_rng(3)
    x = rng.uniform(1, 2, (4, 6))
    d = rng.standard_normal((4, 6))
    layer = L.Dropout(0.5, rng=0)
    xd = on(device, x)
    assert layer.forward(xd, train=False) is xd  # inference: the identity
    y = host(layer.forward(xd))
    mask = y / x
    assert set(np.unique(np.round(mask, 12))) <= {0.0, 2.0}
    assert is_device_array(layer._mask) == (device == "cuda")
    np.testing.assert_allclose(host(layer.backward(on(device, d))), d * mask)
    with layer.hold_noise():
        held = host(layer.forward(xd))
        np.testing.assert_array_equal(host(layer.forward(xd)), held)


def test_gaussian_noise_layer(device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 7)).astype(np.float32)
    layer = L.GaussianNoise(0.5, rng=0)
    xd = on(device, x)
    np.testing.assert_array_equal(host(layer.forward(xd, train=False)), x)
    y = host(layer.forward(xd))
    assert y.dtype == np.float32 and not np.array_equal(y, x)
    np.testing.assert_allclose(y - x, host(layer._noise), rtol=1e-6, atol=1e-6)
    d = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(host(layer.backward(on(device, d))), d)


@pytest.mark.slow  # seconds in the CUDA simulator
def test_dropconnect_layer(device):
    rng = np.random.default_rng(5)
    inner = L.Affine(4, 3, rng=0)
    W = inner.params["W"].copy()
    dc = L.DropConnect(inner, 0.5, rng=1)
    if device == "cuda":
        inner.to_device()
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = host(dc.forward(on(device, x)))
    mask = host(dc._mask)
    assert set(np.unique(mask)) <= {0.0, 2.0}
    np.testing.assert_allclose(y, x @ (W * mask) + host(inner.params["b"]), rtol=1e-5, atol=1e-5)
    d = rng.standard_normal((2, 3)).astype(np.float32)
    dc.backward(on(device, d))
    np.testing.assert_allclose(host(dc.grads["W"]), (x.T @ d) * mask, rtol=1e-5, atol=1e-5)
