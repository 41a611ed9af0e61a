"""Augmentation kernels against the NumPy references."""
import numpy as np
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
    assert K.warp_affine(x, mats, active, dtype(fill), out) is out
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
    assert K.shift_hue(got, shifts, np.ones(N, bool), got) is got  # in place
    np.testing.assert_allclose(got, want, atol=1e-5 if dtype == np.float32 else 1e-12)
    out = np.empty_like(x)
    assert K.shift_hue(x, shifts, np.ones(N, bool), out) is out
    np.testing.assert_array_equal(out, got)


def test_fill_and_paste_boxes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 6, 5))
    boxes = np.array([[1, 4, 0, 2], [0, 0, 0, 0], [5, 6, 4, 5]])
    want = x.copy()
    want[0, :, 1:4, 0:2] = [[[1.0]], [[2.0]]]
    want[2, :, 5:6, 4:5] = [[[5.0]], [[6.0]]]
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    got = x.copy()
    assert K.fill_boxes(got, boxes, values, got) is got  # in place
    np.testing.assert_array_equal(got, want)
    out = np.full_like(x, np.nan)
    np.testing.assert_array_equal(K.fill_boxes(x, boxes, values, out), want)
    src = rng.standard_normal(x.shape)
    got = x.copy()
    assert K.paste_boxes(got, boxes, src, np.array([2, 0, 1]), got) is got
    want = x.copy()
    want[0, :, 1:4, 0:2] = src[2, :, 1:4, 0:2]
    want[2, :, 5:6, 4:5] = src[1, :, 5:6, 4:5]
    np.testing.assert_array_equal(got, want)
    out = np.full_like(x, np.nan)
    np.testing.assert_array_equal(K.paste_boxes(x, boxes, src, np.array([2, 0, 1]), out), want)


def test_fill_boxes_uniform_draws_the_batch_from_rng():
    x = np.random.default_rng(4).standard_normal((2, 2, 4, 3)).astype(np.float32)
    boxes = np.array([[0, 2, 1, 3], [1, 1, 0, 3]])
    out = K.fill_boxes_uniform(x, boxes, np.random.default_rng(9), np.empty_like(x))
    noise = np.random.default_rng(9).random(x.shape, dtype=np.float32)
    want = x.copy()
    want[0, :, 0:2, 1:3] = noise[0, :, 0:2, 1:3]
    np.testing.assert_array_equal(out, want)


def test_photometric_kernels_match_their_formulas():
    rng = np.random.default_rng(6)
    x = rng.uniform(-0.2, 1.2, (3, 3, 4, 5))
    f = rng.uniform(0.5, 1.5, 3)
    b = f[:, None, None, None]
    grey = np.einsum("nchw,c->nhw", x, [0.299, 0.587, 0.114])[:, None]
    m = grey.mean(axis=(1, 2, 3), keepdims=True)
    for kernel, want in [(K.adjust_brightness, x * b), (K.adjust_contrast, m + (x - m) * b),
                         (K.adjust_saturation, grey + (x - grey) * b),
                         (K.adjust_gamma, np.clip(x, 0, 1) ** b)]:
        out = np.full_like(x, np.nan)
        assert kernel(x, f, out) is out
        np.testing.assert_allclose(out, np.clip(want, 0, 1), rtol=1e-12, atol=1e-12,
                                   err_msg=kernel.__name__)
    x1 = x[:, :2]  # not RGB: contrast takes the channel mean as the grey level
    m1 = x1.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(K.adjust_contrast(x1, f, np.empty_like(x1)),
                               np.clip(m1 + (x1 - m1) * b, 0, 1), rtol=1e-12, atol=1e-12)


def test_noise_mixing_and_masking_kernels():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 4, 5))
    stds = np.array([0.5, 0.0, 2.0])
    got = K.add_gaussian_noise(x, np.random.default_rng(1), stds, np.empty_like(x))
    e = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_allclose(got, x + stds[:, None, None, None] * e, rtol=1e-15, atol=0)
    lam, partner = np.array([0.25, 1.0, 0.5]), np.array([2, 0, 0])
    got = K.mix_samples(x, lam, partner, np.empty_like(x))
    l4 = lam[:, None, None, None]
    np.testing.assert_allclose(got, l4 * x + (1 - l4) * x[partner], rtol=1e-15, atol=0)
    values = rng.standard_normal((3, 2))
    for axis, length in ((2, 4), (3, 5)):
        lost = rng.random((3, length)) < 0.5
        want = x.copy()
        for n in range(3):
            for k in np.flatnonzero(lost[n]):
                idx = (n, slice(None), k) if axis == 2 else (n, slice(None), slice(None), k)
                want[idx] = values[n][:, None]
        np.testing.assert_array_equal(K.mask_bands(x, lost, axis, values, np.empty_like(x)),
                                      want)


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
    got = K.shift_hue(img, shifts, np.ones(4, bool), np.empty_like(img))
    np.testing.assert_allclose(got, ref.shift_hue(img, shifts), atol=1e-12)
