"""CUDA activation twins against the CPU kernels (the simulator without a GPU)."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl.backend import kernels_for

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
