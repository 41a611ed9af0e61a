"""CUDA loss twins against the CPU kernels, and the loss layers on the device (simulator
without a GPU: tiny shapes)."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl import layers as L
from cdl.backend import kernels_for

from ..conftest import host, on


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (4, 1), (5, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("soft", [False, True])
def test_softmax_cross_entropy_twins(shape, dtype, soft):
    rng = np.random.default_rng(sum(shape))
    N, C = shape
    y = (rng.standard_normal(shape) * 3).astype(dtype)
    y[0, 0] = 1e4
    t = rng.dirichlet(np.ones(C), N).astype(dtype) if soft else rng.integers(0, C, N)
    probs = np.empty_like(y)
    loss = CPU.softmax_cross_entropy_forward(y, t, probs)
    dx = CPU.softmax_cross_entropy_backward(probs, t, np.empty_like(y))
    yg, tg = on("cuda", y, t)
    G = kernels_for(yg, tg)
    pg = G.empty_like(yg)
    lg = G.softmax_cross_entropy_forward(yg, tg, pg)
    assert isinstance(lg, float)
    np.testing.assert_allclose(lg, loss, **_tol(dtype))
    np.testing.assert_allclose(host(pg), probs, **_tol(dtype))
    dxg = G.softmax_cross_entropy_backward(pg, tg, G.empty_like(yg))
    np.testing.assert_allclose(host(dxg), dx, **_tol(dtype))


def test_device_label_out_of_range_gives_nan():
    yg, tg = on("cuda", np.zeros((2, 3)), np.array([1, 3]))
    G = kernels_for(yg)
    assert np.isnan(G.softmax_cross_entropy_forward(yg, tg, G.empty_like(yg)))


@pytest.mark.parametrize("shape", [(1,), (3, 2), (2, 2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_cross_entropy_and_mse_twins(shape, dtype):
    rng = np.random.default_rng(len(shape))
    y = (rng.standard_normal(shape) * 3).astype(dtype)
    y.flat[0] = -1e4
    t = rng.random(shape).astype(dtype)
    probs = np.empty_like(y)
    loss = CPU.sigmoid_cross_entropy_forward(y, t, probs)
    dx = CPU.sigmoid_cross_entropy_backward(probs, t, np.empty_like(y))
    yg, tg = on("cuda", y, t)
    G = kernels_for(yg, tg)
    pg = G.empty_like(yg)
    np.testing.assert_allclose(G.sigmoid_cross_entropy_forward(yg, tg, pg), loss, **_tol(dtype))
    np.testing.assert_allclose(host(pg), probs, **_tol(dtype))
    np.testing.assert_allclose(host(G.sigmoid_cross_entropy_backward(pg, tg, G.empty_like(yg))),
                               dx, **_tol(dtype))
    np.testing.assert_allclose(G.mean_squared_error_forward(yg, tg),
                               CPU.mean_squared_error_forward(y, t), **_tol(dtype))
    np.testing.assert_allclose(host(G.mean_squared_error_backward(yg, tg, G.empty_like(yg))),
                               CPU.mean_squared_error_backward(y, t, np.empty_like(y)),
                               **_tol(dtype))


@pytest.mark.slow  # seconds in the CUDA simulator
def test_device_sum_covers_many_blocks():
    # more elements than one block of the reduction: partial sums, then their sum
    y = np.random.default_rng(0).standard_normal(700)
    t = np.zeros_like(y)
    yg, tg = on("cuda", y, t)
    np.testing.assert_allclose(kernels_for(yg).mean_squared_error_forward(yg, tg),
                               0.5 * (y * y).sum() / 700, rtol=1e-12)


def _targets(name, y, rng):
    if name == "SoftmaxCrossEntropy":
        return rng.integers(0, y.shape[1], y.shape[0])
    if name == "SigmoidCrossEntropy":
        return (rng.random(y.shape) < 0.5).astype(np.float64)
    return rng.standard_normal(y.shape)


@pytest.mark.parametrize("name", ["SoftmaxCrossEntropy", "SigmoidCrossEntropy", "MeanSquaredError"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t_on", ["host", "device"])
def test_loss_layers_on_the_device_match_the_cpu(device, name, dtype, t_on):
    rng = np.random.default_rng(5)
    y = rng.standard_normal((3, 4)).astype(dtype)
    t = _targets(name, y, rng)
    cpu, dev = getattr(L, name)(), getattr(L, name)()
    loss, dx = cpu.forward(y, t), cpu.backward(0.5)
    yd = on(device, y)
    td = on(device, t) if t_on == "device" else t
    ld = dev.forward(yd, td)
    dxd = dev.backward(0.5)
    assert isinstance(ld, float)
    assert kernels_for(dxd) is kernels_for(yd) and host(dxd).dtype == dtype
    np.testing.assert_allclose(ld, loss, **_tol(dtype))
    np.testing.assert_allclose(host(dxd), dx, **_tol(dtype))


def test_device_targets_checks():
    y, t = on("cuda", np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="must be integers"):
        L.SoftmaxCrossEntropy().forward(y, t)
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        L.SoftmaxCrossEntropy().forward(on("cuda", np.zeros((3, 3))), on("cuda", np.array([0, 1])))
    with pytest.raises(ValueError, match="targets are on the GPU but the scores are not"):
        L.MeanSquaredError().forward(np.zeros((2, 3)), on("cuda", np.zeros((2, 3))))
    with pytest.raises(ValueError, match="do not match"):
        L.SigmoidCrossEntropy().forward(y, on("cuda", np.zeros((2, 2))))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):  # host labels: checked
        L.SoftmaxCrossEntropy().forward(y, np.array([0, 3]))
