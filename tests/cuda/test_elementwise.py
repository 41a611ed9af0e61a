"""CUDA element-wise twins against the CPU kernels (the simulator without a GPU)."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl.backend import kernels_for

from ..conftest import host, on


@pytest.mark.parametrize("shape", [(1, 1), (2, 3, 2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_scale_twins(shape, dtype):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    ag, bg = on("cuda", a, b)
    G = kernels_for(ag)
    np.testing.assert_array_equal(host(G.add(ag, bg, G.empty_like(ag))),
                                  CPU.add(a, b, np.empty_like(a)))
    np.testing.assert_array_equal(host(G.scale(ag, 0.3, G.empty_like(ag))),
                                  CPU.scale(a, 0.3, np.empty_like(a)))
    mixed = G.add(ag, on("cuda", b.astype(np.float64)), G.empty(shape, np.float64))
    np.testing.assert_array_equal(host(mixed), a + b.astype(np.float64))


@pytest.mark.parametrize("shape", [(1, 2), (2, 3, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_copy_twins(shape, dtype):
    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((shape[0], c, *shape[2:])).astype(dtype) for c in (shape[1], 1, 2)]
    joined = (shape[0], sum(p.shape[1] for p in parts), *shape[2:])
    y = np.zeros(joined, dtype)
    G = kernels_for(on("cuda", parts[0]))
    yg = G.zeros(joined, dtype)
    c0 = 0
    for p in parts:
        CPU.copy_channels(p, c0, y)
        G.copy_channels(on("cuda", p), c0, yg)
        c0 += p.shape[1]
    np.testing.assert_array_equal(host(yg), y)
    c0 = 0
    for p in parts:
        np.testing.assert_array_equal(host(G.slice_channels(yg, c0, G.empty(p.shape, dtype))), p)
        c0 += p.shape[1]
