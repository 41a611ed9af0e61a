"""CUDA mixed-precision twins against the CPU kernels, and float16 casts on the device."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl.backend import kernels_for

from ..conftest import host, on
from .test_dense import compile_for_gpu

# the simulator casts with NumPy in its own threads, where np.errstate does not reach: the
# overflow to Inf these tests ask for warns there
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [None, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("shape", [(1,), (3, 5, 7)])
def test_all_finite_twin(dtype, bad, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    if bad is not None:
        x.flat[-1] = bad
    xg = on("cuda", x)
    assert kernels_for(xg).all_finite(xg) is CPU.all_finite(x) is (bad is None)


@pytest.mark.parametrize("keep", [True, False])
def test_round_float16_twin(keep):
    x = np.random.default_rng(1).standard_normal((4, 37)).astype(np.float32) * 300
    x[0, :4] = [7e4, -65520.0, np.nan, 1e-6]
    h = np.empty(x.shape, np.float16) if keep else None
    ref = CPU.round_float16(x, np.empty_like(x), h)
    xg = on("cuda", x)
    G = kernels_for(xg)
    hg = G.empty(x.shape, np.float16) if keep else None
    out = G.round_float16(xg, xg, hg)  # in place
    assert out is xg
    np.testing.assert_array_equal(host(out), ref)
    if keep:
        np.testing.assert_array_equal(host(hg), h)


def test_copy_casts_to_and_from_float16_on_the_device():
    """The cast kernel of cdl.precision: rounding to nearest, +-Inf past 65504, exact back."""
    x = np.array([[1.0, 1 / 3, -7e4, 1e-8], [65504.0, 65520.0, -2.5, 1e5]], np.float32)
    G = kernels_for(on("cuda", x))
    with np.errstate(over="ignore"):  # the overflow to Inf is what loss scaling detects
        h = G.copy(on("cuda", x), G.empty(x.shape, np.float16))
        np.testing.assert_array_equal(host(h), x.astype(np.float16))
    back = G.copy(h, G.empty(x.shape, np.float32))
    np.testing.assert_array_equal(host(back), host(h).astype(np.float32))


@pytest.mark.slow
def test_precision_kernels_compile_for_a_gpu():
    compile_for_gpu("""
from cdl.cuda import memory, precision
f16, f32, f64 = T.float16, T.float32, T.float64
check(precision._round_float16_k, arr(f32, 1), arr(f32, 1), arr(f16, 1))
for dt in (f32, f64):
    check(precision._all_finite_k, arr(dt, 1), arr(T.int32, 1))
    check(memory._copy_k, arr(dt, 1), arr(f16, 1))
    check(memory._copy_k, arr(f16, 1), arr(dt, 1))
""")
