"""Augmentation kernels against the NumPy references."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdl.kernels import augment as K
from cdl.kernels.parallel import PARALLEL_MIN
from cdl.kernels import reference as ref


@st.composite
def warp_cases(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    mats = np.zeros((N, 2, 3))
    for n in range(N):
        mats[n] = np.array(draw(st.lists(st.floats(-3, 3), min_size=6, max_size=6))).reshape(2, 3)
        mats[n, :, 2] *= max(H, W)
    return (N, C, H, W), mats


@settings(max_examples=80, deadline=None)
@given(warp_cases(), st.sampled_from([np.float32, np.float64]), st.sampled_from([0.0, -1.5]))
def test_warp_matches_reference(case, dtype, fill):
    shape, mats = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    active = np.ones(shape[0], bool)
    active[0] = shape[0] == 1  # an inactive sample is copied, whatever its matrix
    out = np.empty_like(x)
    K.warp_affine(x, mats, active, dtype(fill), out)
    want = ref.warp_affine(x, mats, fill)
    want[~active] = x[~active]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_warp_identity_and_integer_shift_are_exact():
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 7)).astype(np.float32)
    out = np.empty_like(x)
    eye = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (2, 1, 1))
    K.warp_affine(x, eye, np.ones(2, bool), np.float32(0), out)
    np.testing.assert_array_equal(out, x)
    shift = eye.copy()
    shift[:, 0, 2] = -2.0  # content moves 2 pixels right
    K.warp_affine(x, shift, np.ones(2, bool), np.float32(0), out)
    np.testing.assert_array_equal(out[..., 2:], x[..., :-2])
    np.testing.assert_array_equal(out[..., :2], 0)


def test_warp_points_far_outside_or_nan_read_fill():
    x = np.ones((1, 1, 3, 3))
    out = np.empty_like(x)
    for m in ([[1, 0, 1e18], [0, 1, 0]], [[0, 0, np.nan], [0, 0, 0]]):
        K.warp_affine(x, np.array([m], dtype=np.float64), np.ones(1, bool), 7.0, out)
        np.testing.assert_array_equal(out, 7.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.sampled_from([np.float32, np.float64]))
def test_shift_hue_matches_colorsys(N, H, W, dtype):
    rng = np.random.default_rng(2)
    x = rng.random((N, 3, H, W)).astype(dtype)
    x[0, :, 0, 0] = 0.5  # a grey pixel has no hue
    shifts = rng.uniform(-0.5, 0.5, N)
    want = ref.shift_hue(x, shifts)
    got = x.copy()
    K.shift_hue(got, shifts, np.ones(N, bool))
    np.testing.assert_allclose(got, want, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_fill_and_paste_boxes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 6, 5))
    boxes = np.array([[1, 4, 0, 2], [0, 0, 0, 0], [5, 6, 4, 5]])
    want = x.copy()
    want[0, :, 1:4, 0:2] = [[[1.0]], [[2.0]]]
    want[2, :, 5:6, 4:5] = [[[5.0]], [[6.0]]]
    got = x.copy()
    K.fill_boxes(got, boxes, np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    np.testing.assert_array_equal(got, want)
    src = rng.standard_normal(x.shape)
    got = x.copy()
    K.paste_boxes(got, boxes, src, np.array([2, 0, 1]))
    want = x.copy()
    want[0, :, 1:4, 0:2] = src[2, :, 1:4, 0:2]
    want[2, :, 5:6, 4:5] = src[1, :, 5:6, 4:5]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("boxes", [[[0, 7, 0, 1]], [[-1, 2, 0, 1]], [[3, 2, 0, 1]], [[0, 1, 0, 6]]])
def test_check_boxes_refuses_boxes_outside(boxes):
    with pytest.raises(ValueError, match="boxes must satisfy"):
        K.check_boxes("test", np.array(boxes), (1, 1, 6, 5))


def test_large_batches_split_over_threads_match_reference():
    """Batches above PARALLEL_MIN pixels run in slices on cdl's worker pool."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 1, 30, 30)).astype(np.float32)
    assert x.size >= PARALLEL_MIN
    mats = np.tile(np.array([[0.9, -0.3, 4.0], [0.3, 0.9, -3.0]]), (40, 1, 1))
    mats += rng.uniform(-0.2, 0.2, mats.shape)
    active = rng.random(40) < 0.8
    out = np.empty_like(x)
    K.warp_affine(x, mats, active, np.float32(0.5), out)
    want = ref.warp_affine(x, mats, 0.5)
    want[~active] = x[~active]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    img = rng.random((4, 3, 48, 60))
    assert img.size >= PARALLEL_MIN
    shifts = rng.uniform(-0.5, 0.5, 4)
    got = img.copy()
    K.shift_hue(got, shifts, np.ones(4, bool))
    np.testing.assert_allclose(got, ref.shift_hue(img, shifts), atol=1e-12)
