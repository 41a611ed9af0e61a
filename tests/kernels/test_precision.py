"""Mixed-precision CPU kernels: all_finite, and the float16 casts of copy against NumPy."""
import numpy as np
import pytest

from cdl import kernels as K
from cdl.kernels.precision import half_cast


def test_all_finite():
    x = np.zeros((3, 4), np.float32)
    assert K.all_finite(x)
    for bad in (np.inf, -np.inf, np.nan):
        y = x.copy()
        y[2, 3] = bad
        assert not K.all_finite(y) and not K.all_finite(y.astype(np.float64))


def test_every_float16_upcasts_as_numpy_does():
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(256, 256)
    out = K.copy(h, np.empty(h.shape, np.float32))
    np.testing.assert_array_equal(out.view(np.uint32), h.astype(np.float32).view(np.uint32))


def _hard_float32s():
    """Every float16 value, the float32s next to it and the midpoints between neighbours
    (where rounding half to even decides), the overflow edge, float32 subnormals, specials."""
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    h = h[np.isfinite(h)].astype(np.float32)
    u = h.view(np.uint32)
    near = np.concatenate([u, u + 1, u - 1]).view(np.float32)
    h64 = np.sort(np.unique(h.astype(np.float64)))
    mid = ((h64[1:] + h64[:-1]) / 2).astype(np.float32)  # exact: float16 midpoints fit
    mu = mid.view(np.uint32)
    special = np.array([65504, 65519.996, 65520, 65536, 1e30, np.inf, -np.inf, np.nan, 0.0,
                        -0.0, 1e-45, -1e-45, 1e-40, 2.0 ** -25, 2.0 ** -24, 3 * 2.0 ** -26,
                        2.0 ** -14, 2.0 ** -15], np.float32)
    return np.concatenate([near, mid, (mu + 1).view(np.float32), (mu - 1).view(np.float32),
                           special, np.random.default_rng(0).standard_normal(10000)
                           .astype(np.float32) * 100])


def test_float32_to_float16_rounds_as_numpy_does():
    """All 2^32 float32 values agree too (checked once, 10 minutes here)."""
    x = _hard_float32s()
    with np.errstate(over="ignore", invalid="ignore"):
        ref = x.astype(np.float16)
    out = K.copy(x, np.empty(x.shape, np.float16))
    same = (out.view(np.uint16) == ref.view(np.uint16)) | (np.isnan(out) & np.isnan(ref))
    assert same.all(), x[~same][:5]


@pytest.mark.parametrize("shape", [(0,), (5,), (70000,), (3, 300, 100)])
def test_copy_casts_any_size_and_leaves_other_pairs_to_numpy(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    h = K.copy(x, np.empty(shape, np.float16))
    np.testing.assert_array_equal(h, x.astype(np.float16))
    np.testing.assert_array_equal(K.copy(h, np.empty(shape, np.float32)), h.astype(np.float32))
    np.testing.assert_array_equal(K.copy(h, np.empty(shape, np.float64)), h.astype(np.float64))
    assert not half_cast(x, np.empty(shape, np.float64))
    if len(shape) == 3:  # not C-contiguous: NumPy's cast
        assert not half_cast(x[:, ::2], np.empty((3, 150, 100), np.float16))
        np.testing.assert_array_equal(K.copy(x[:, ::2], np.empty((3, 150, 100), np.float16)),
                                      x[:, ::2].astype(np.float16))


@pytest.mark.parametrize("keep", [True, False])
def test_round_float16_rounds_in_place_as_numpy_does(keep):
    x = _hard_float32s()
    with np.errstate(over="ignore", invalid="ignore"):
        ref = x.astype(np.float16)
    half = np.empty(x.shape, np.float16) if keep else None
    y = x.copy()
    assert K.round_float16(y, y, half) is y
    np.testing.assert_array_equal(y, ref.astype(np.float32))  # NaN == NaN here
    if keep:
        np.testing.assert_array_equal(half, ref)
