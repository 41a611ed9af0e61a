"""cdl.cuda._reduce: block tree sums for any block size, and total() in two passes."""
import numpy as np
import pytest
from numba import cuda, float64

from cdl.cuda import _reduce


@pytest.mark.parametrize("n, t", [(0, 32), (1, 32), (33, 64), (200, 256), (10**6, 256)])
def test_block_threads(n, t):
    assert _reduce.block_threads(n) == t


@cuda.jit
def _sums_k(x, out):
    s1 = cuda.shared.array(_reduce.MAX_THREADS, float64)
    s2 = cuda.shared.array(_reduce.MAX_THREADS, float64)
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    s1[t] = x[t]
    s2[t] = 2 * x[t]
    _reduce.tree_sum2(s1, s2, t, nt)
    if t == 0:
        out[1] = s1[0]
        out[2] = s2[0]
    s1[t] = x[t]
    _reduce.tree_sum(s1, t, nt)
    if t == 0:
        out[0] = s1[0]


@pytest.mark.parametrize("nt", [1, 7, 32, 37])
def test_tree_sums_for_any_block_size(nt):
    x = np.arange(1, nt + 1, dtype=np.float64)
    out = cuda.device_array(3)
    _sums_k[1, nt](cuda.to_device(x), out)
    assert out.copy_to_host().tolist() == [x.sum(), x.sum(), 2 * x.sum()]


@pytest.mark.parametrize("n", [0, 1, 100, pytest.param(300, marks=pytest.mark.slow)])  # 300: two
# blocks, then a second pass (seconds in the simulator)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_total(n, dtype):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    d = cuda.to_device(x)
    x64 = x.astype(np.float64)
    assert _reduce.total(d) == pytest.approx(x64.sum(), rel=1e-12, abs=1e-12)
    assert _reduce.total(d, _reduce.SQUARES) == pytest.approx((x64 ** 2).sum(), rel=1e-12)
    assert _reduce.total(d, _reduce.ABS) == pytest.approx(np.abs(x64).sum(), rel=1e-12)
    assert type(_reduce.total(d)) is float
