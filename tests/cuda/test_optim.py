"""CUDA optimizer twins against the CPU kernels (the simulator without a GPU), and the
optimizer classes with their state on the device."""
import numpy as np
import pytest

import cdl
from cdl import kernels as CPU
from cdl import optim
from cdl.backend import is_device_array, kernels_for

from ..conftest import host, on
from ..kernels.test_optim import CASES  # name -> (number of state arrays, scalars after them)


def _tol(dtype):
    return dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("shape", [(5,), (3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_updates_match_cpu(name, shape, dtype):
    n_state, scalars = CASES[name]
    rng = np.random.default_rng(0)
    p = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    p.reshape(-1)[0] = 0   # sign(0) for weight decay
    g.reshape(-1)[1] = 0
    state = [np.abs(rng.standard_normal(shape)).astype(dtype) for _ in range(n_state)]
    cpu = [p.copy(), *(s.copy() for s in state)]
    dev = on("cuda", p, *state) if n_state else [on("cuda", p)]
    gd = on("cuda", g)
    K = kernels_for(gd)
    for _ in range(2):
        assert getattr(CPU, name)(cpu[0], g, *cpu[1:], *scalars) is cpu[0]
        assert getattr(K, name)(dev[0], gd, *dev[1:], *scalars) is dev[0]
    np.testing.assert_array_equal(host(gd), g)  # the gradient is only read
    for a, b in zip(dev, cpu):
        assert host(a).dtype == dtype
        np.testing.assert_allclose(host(a), b, **_tol(dtype))


@pytest.mark.slow  # seconds in the CUDA simulator
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_and_in_place_edits_match_cpu(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 7)) * 3).astype(dtype)
    x[0, 0] = np.nan
    xg = on("cuda", x[1:].copy())
    K = kernels_for(xg)
    s, a = K.sum_squares(xg), K.sum_abs(xg)
    assert type(s) is float and type(a) is float
    assert s == pytest.approx(CPU.sum_squares(x[1:].copy()), rel=1e-6)
    assert a == pytest.approx(CPU.sum_abs(x[1:].copy()), rel=1e-6)
    assert K.sum_squares(K.zeros((0,), dtype)) == 0.0
    big = rng.standard_normal(700).astype(dtype)  # several blocks: a second pass adds them
    assert K.sum_abs(on("cuda", big)) == pytest.approx(CPU.sum_abs(big), rel=1e-6)
    xg = on("cuda", x)
    assert K.clip_by_value(xg, 1.5) is xg
    np.testing.assert_array_equal(host(xg), CPU.clip_by_value(x.copy(), 1.5))  # NaN kept


def test_bad_arrays_are_refused():
    K = kernels_for(on("cuda", np.zeros(1)))
    p = on("cuda", np.zeros(4))
    with pytest.raises(ValueError, match="argument 2 .* 4 elements"):
        K.sgd_update(p, on("cuda", np.zeros(5)), 0.1)
    with pytest.raises(ValueError, match="argument 2 .*float64"):
        K.sgd_update(p, on("cuda", np.zeros(4, np.float32)), 0.1)
    with pytest.raises(ValueError, match="argument 2 .*device array"):
        K.sgd_update(p, np.zeros(4), 0.1)
    with pytest.raises(ValueError, match="updated array"):
        K.sgd_update(on("cuda", np.zeros((4, 4)))[:, 0], np.zeros(4), 0.1)
    with pytest.raises(ValueError, match="updated array"):
        K.sgd_update(on("cuda", np.zeros(4, np.int64)), on("cuda", np.zeros(4, np.int64)), 1)
    with pytest.raises(ValueError, match="step t"):
        K.adam_update(p, p, p, p, 0.1, 0.9, 0.99, 1e-8, 0)


@pytest.mark.parametrize("make", [lambda: optim.Momentum(lr=0.1), lambda: optim.Adam(lr=0.01),
                                  lambda: optim.AdaDelta()])
def test_optimizer_state_lives_with_the_params(device, make):
    rng = np.random.default_rng(2)
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4).astype(np.float32)}
    grads = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}
    ref = {k: v.copy() for k, v in params.items()}
    opt, ref_opt = make(), make()
    moved = {k: on(device, v) for k, v in params.items()}
    moved_grads = {k: on(device, v) for k, v in grads.items()}
    for _ in range(2):
        opt.update(moved, moved_grads)
        ref_opt.update(ref, grads)
    for k in params:
        np.testing.assert_allclose(host(moved[k]), ref[k], rtol=1e-6)
        for slot in opt.state[k].values():
            assert is_device_array(slot) == (device == "cuda")
            assert slot.dtype == params[k].dtype


def test_update_casts_a_gradient_of_another_dtype_on_the_device(device):
    p = on(device, np.ones(3, np.float32))
    opt = optim.SGD(lr=0.5)
    opt.update({"w": p}, {"w": on(device, np.full(3, 2.0))})
    np.testing.assert_array_equal(host(p), 0.0)


@pytest.mark.slow  # seconds in the CUDA simulator
def test_clipping_penalty_and_averaging_on_the_device(device):
    rng = np.random.default_rng(3)
    g = {"a": rng.standard_normal((2, 3)), "b": rng.standard_normal(3).astype(np.float32)}
    gd = {k: on(device, v.copy()) for k, v in g.items()}
    norm = optim.clip_grad_norm(gd, 0.5)
    assert norm == pytest.approx(optim.global_norm(g), rel=1e-6)
    assert optim.global_norm(gd) == pytest.approx(0.5, rel=1e-6)
    optim.clip_grad_value(gd, 0.1)
    for v in gd.values():
        assert np.abs(host(v)).max() <= 0.1 + 1e-7

    net = cdl.Sequential([cdl.layers.Affine(3, 2, rng=0)])
    wd = optim.WeightDecay(l2=0.1, l1=0.01)
    want = wd.penalty(net.layers)
    if device == "cuda":
        net.to_device()
    assert wd.penalty(net.layers) == pytest.approx(want, rel=1e-6)

    ema = optim.EMA(decay=0.5)
    params = {"w": on(device, np.zeros(3))}
    ema.update(params)
    K = kernels_for(params["w"])
    K.fill(params["w"], 1.0)
    ema.update(params)
    assert is_device_array(ema.average["w"]) == (device == "cuda")
    model = type("Model", (), {"params": params})()
    with ema.applied(model):
        np.testing.assert_allclose(host(params["w"]), 9 / 11)  # beta = min(0.5, 2/11)
    np.testing.assert_array_equal(host(params["w"]), 1.0)
