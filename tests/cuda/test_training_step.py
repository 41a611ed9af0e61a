"""A whole training step on the (simulated) GPU: same result as on the CPU, no host copies."""
import contextlib

import numpy as np
import pytest

import cdl
from cdl import Sequential, Trainer, layers as L, optim

from ..conftest import host, on


def _cnn(rng):
    # no conv bias before BatchNorm: its gradient is rounding noise, which Adam would amplify
    return Sequential([L.Conv2D(1, 2, 3, pad=1, bias=False, rng=rng), L.BatchNorm(2), L.ReLU(),
                       L.MaxPool2D(2), L.Flatten(), L.Dropout(0.25),
                       L.Affine(2 * 2 * 2, 3, rng=rng)], loss=L.SoftmaxCrossEntropy())


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, 1, 4, 4)).astype(np.float32), np.array([0, 2, 1])


@contextlib.contextmanager
def _no_host_copies():
    """Fail on any copy of a device array of more than one element to the host."""
    from numba import cuda
    copies = []
    cls = type(cuda.device_array(1, np.float32))
    originals = {name: getattr(cls, name) for name in ("copy_to_host", "__array__")
                 if hasattr(cls, name)}

    def watch(name):
        def wrapper(self, *args, **kwargs):
            if self.size > 1:
                copies.append((name, self.shape))
            return originals[name](self, *args, **kwargs)
        return wrapper
    for name in originals:
        setattr(cls, name, watch(name))
    try:
        yield copies
    finally:
        for name, fn in originals.items():
            setattr(cls, name, fn)


@pytest.mark.slow
def test_cnn_step_on_device_matches_cpu():
    x, t = _data()
    cpu, gpu = _cnn(np.random.default_rng(1)), _cnn(np.random.default_rng(1))
    gpu.to_device()
    opt_cpu, opt_gpu = optim.Adam(lr=1e-2), optim.Adam(lr=1e-2)
    xd, td = on("cuda", x, t)
    with _no_host_copies() as copies:
        loss_gpu = gpu.loss(xd, td)
        gpu.backward(input_grad=False)
        opt_gpu.update(gpu.params, gpu.grads)
    assert copies == [], f"the training step copied device arrays to the host: {copies}"
    drop_cpu, drop_gpu = cpu.layers[5], gpu.layers[5]
    drop_cpu._noise = host(drop_gpu._noise)  # the same mask on both sides
    with cpu.hold_noise():
        loss_cpu = cpu.loss(x, t)
    cpu.backward(input_grad=False)
    opt_cpu.update(cpu.params, cpu.grads)
    assert isinstance(loss_gpu, float)
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-5)
    for k, v in cpu.state().items():
        np.testing.assert_allclose(host(gpu.state()[k]), v, rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.slow
def test_trainer_on_device_trains_and_model_comes_back():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 4, 4)).astype(np.float32)
    t = rng.integers(0, 3, 4)
    net = _cnn(np.random.default_rng(2))
    history = Trainer(net, optim.Adam(lr=1e-2), batch_size=4, epochs=1, seed=0, verbose=False,
                      progress=False, device="cuda").fit(x, t, validation_data=(x, t))
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"]).all()
    assert all(cdl.backend.is_device_array(v) for v in net.params.values())
    net.to_host()
    assert all(isinstance(v, np.ndarray) for v in net.state().values())
    assert net.predict(x).shape == (4, 3)


def test_trainer_refuses_an_unknown_device():
    with pytest.raises(ValueError, match="device"):
        Trainer(_cnn(np.random.default_rng(0)), optim.SGD(), device="tpu")
