"""Gradient clipping by global norm and by value."""
import math

import numpy as np
import pytest

from cdl import optim


def _grads(rng, dtype=np.float64):
    return {"a": rng.standard_normal((3, 4)).astype(dtype), "b": rng.standard_normal(5).astype(dtype)}


def test_global_norm_clipping_scales_every_array_alike(rng):
    g = _grads(rng)
    before = {k: v.copy() for k, v in g.items()}
    norm = math.sqrt(sum((v ** 2).sum() for v in before.values()))
    assert optim.global_norm(g) == pytest.approx(norm, rel=1e-12)
    returned = optim.clip_grad_norm(g, norm / 4)
    assert returned == pytest.approx(norm, rel=1e-12)
    for k in g:
        np.testing.assert_allclose(g[k], before[k] / 4, rtol=1e-12)
    assert optim.global_norm(g) == pytest.approx(norm / 4, rel=1e-12)


def test_norm_below_the_limit_is_untouched(rng):
    g = _grads(rng)
    before = {k: v.copy() for k, v in g.items()}
    optim.clip_grad_norm(g, 1e6)
    for k in g:
        np.testing.assert_array_equal(g[k], before[k])


def test_value_clipping(rng):
    g = _grads(rng, np.float32)
    before = {k: v.copy() for k, v in g.items()}
    optim.clip_grad_value(g, 0.5)
    for k in g:
        assert g[k].dtype == np.float32
        np.testing.assert_array_equal(g[k], np.clip(before[k], -0.5, 0.5))


def test_gradclip_wraps_an_optimizer(rng):
    p = {"w": np.zeros(4)}
    opt = optim.GradClip(optim.SGD(lr=1.0), max_norm=1.0)
    opt.update(p, {"w": np.array([3.0, 4.0, 0.0, 0.0])})
    np.testing.assert_allclose(p["w"], [-0.6, -0.8, 0, 0])
    assert opt.last_norm == pytest.approx(5.0)
    both = optim.GradClip(optim.SGD(lr=1.0), max_norm=1.0, max_value=0.1)
    p = {"w": np.zeros(2)}
    both.update(p, {"w": np.array([3.0, -0.05])})  # value first: (0.1, -0.05), norm < 1
    np.testing.assert_allclose(p["w"], [-0.1, 0.05])
    wrapped = optim.GradClip(optim.Momentum(lr=0.1, momentum=0.5), max_value=1.0)
    wrapped.lr = 0.01  # schedules set lr through the wrapper
    assert wrapped.optimizer.lr == 0.01 and wrapped.momentum == 0.5 and wrapped.t == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm({"a": np.ones(2)}, 0)
    with pytest.raises(ValueError, match="max_value"):
        optim.clip_grad_value({"a": np.ones(2)}, -1)
    with pytest.raises(ValueError, match="float32/float64"):
        optim.clip_grad_value({"a": np.ones(2, int)}, 1)
    ro = np.ones(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        optim.clip_grad_norm({"a": ro}, 1)
    with pytest.raises(ValueError, match="max_norm, max_value"):
        optim.GradClip(optim.SGD())
    with pytest.raises(ValueError, match="wraps an optimizer"):
        optim.GradClip(object(), max_norm=1)
    with pytest.raises(FloatingPointError, match="diverged"):
        optim.clip_grad_norm({"a": np.array([np.inf])}, 1.0)
