"""Element-wise kernels against NumPy."""
import numpy as np
import pytest

from cdl import kernels as K


@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float32, np.float64)])
def test_add_and_scale(dtypes):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 4)).astype(dtypes[0])
    b = rng.standard_normal((2, 3, 4)).astype(dtypes[1])
    out = np.empty(a.shape, np.result_type(a, b))
    np.testing.assert_array_equal(K.add(a, b, out), a + b)
    np.testing.assert_array_equal(K.add(out, a, out), (a + b) + a)  # out may be an input
    np.testing.assert_array_equal(K.scale(a, 0.3, np.empty_like(a)), a * np.float32(0.3))


@pytest.mark.parametrize("shape", [(1, 2), (2, 3), (2, 3, 4, 5), (3, 1, 2)])
def test_channel_copies_match_numpy(shape):
    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((shape[0], c, *shape[2:])) for c in (shape[1], 1, 2)]
    y = np.full((shape[0], sum(p.shape[1] for p in parts), *shape[2:]), np.nan)
    c0 = 0
    for p in parts:
        K.copy_channels(p, c0, y)
        c0 += p.shape[1]
    np.testing.assert_array_equal(y, np.concatenate(parts, axis=1))
    c0 = 0
    for p in parts:
        np.testing.assert_array_equal(K.slice_channels(y, c0, np.empty_like(p)), p)
        c0 += p.shape[1]
