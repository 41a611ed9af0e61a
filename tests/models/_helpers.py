"""Shared by the cdl.models tests: layer counts and a whole-model gradient check."""
import numpy as np


def count(layers, cls):
    """How many layers of class cls, containers searched through."""
    n = 0
    for layer in layers:
        n += isinstance(layer, cls) + count(layer.children(), cls)
    return n


def check_model(net, x, t, seed=0, names=None):
    """dL/dx and dL/dparam along one random direction per array, against central differences.

    Biases and BatchNorm betas are moved off 0 first: a window of ReLU zeros
    (or a constant BatchNorm channel) would put the next ReLU on its kink.
    """
    net.astype(np.float64)
    rng = np.random.default_rng(seed)
    for name, p in net.params.items():
        if name.endswith((".b", ".beta")):
            p[...] = rng.uniform(0.1, 0.5, p.shape) * rng.choice([-1, 1], p.shape)
    x = np.array(x, dtype=np.float64)
    with net.hold_noise():
        net.loss(x, t)
        dx = net.backward()
        analytic = {"x": dx.copy(), **{k: g.copy() for k, g in net.grads.items()}}
        arrays = {"x": x, **net.params}
        for name in names or arrays:
            p, v, h = arrays[name], rng.standard_normal(arrays[name].shape), 1e-6
            old = p.copy()
            p[...] = old + h * v
            up = net.loss(x, t)
            p[...] = old - h * v
            down = net.loss(x, t)
            p[...] = old
            np.testing.assert_allclose((analytic[name] * v).sum(), (up - down) / (2 * h),
                                       rtol=1e-4, atol=1e-8, err_msg=name)
    return analytic


def tiny_input(shape, seed=1):
    r = np.random.default_rng(seed)
    return r.standard_normal((2, *shape)), np.array([0, 2])
