"""CUDA augmentation twins against the CPU kernels, and cdl.data.augment transforms on a device
batch against the same transforms on the host batch with the same rng. Tiny shapes: the
simulator runs every thread in Python."""
import numpy as np
import pytest

from cdl import kernels as CPU
from cdl.backend import is_device_array, kernels_for
from cdl.data import augment as A

from ..conftest import host, on
from .test_dense import compile_for_gpu

# numba.cuda.random's xoroshiro128+ wraps uint64 sums on purpose; the simulator runs it on
# NumPy scalars, which warn about every wrap.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

DTYPES = [np.float32, np.float64]


def _K():
    return kernels_for(on("cuda", np.zeros(1)))


def _dev(*arrays):
    """The arrays on the GPU, always as a list (conftest's on() gives one array as is)."""
    return [on("cuda", a) for a in arrays]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _images(dtype, shape=(2, 3, 4, 5), seed=0):
    return np.random.default_rng(seed).uniform(-0.1, 1.1, shape).astype(dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_warp_affine_matches_cpu(dtype):
    x = np.random.default_rng(1).standard_normal((3, 2, 4, 5)).astype(dtype)
    mats = np.array([[[0.8, -0.4, 1.3], [0.5, 0.9, -0.7]],   # rotation, scale, shift
                     [[-1.0, 0, 4.0], [0, 1.0, 0]],         # a flip: exact
                     [[1.0, 0, 0.5], [0, 1.0, 0]]])         # inactive: copied
    active = np.array([True, True, False])
    fill = dtype(-0.5)
    want = CPU.warp_affine(x, mats, active, fill, np.empty_like(x))
    got = _K().warp_affine(*_dev(x, mats, active), fill, on("cuda", np.full_like(x, 9)))
    np.testing.assert_allclose(host(got), want, **tol(dtype))
    np.testing.assert_array_equal(host(got)[1:], want[1:])


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_box_kernels_match_cpu_in_place_and_not(dtype):
    x = _images(dtype, (3, 2, 4, 5))
    boxes = np.array([[1, 3, 0, 2], [0, 0, 0, 0], [3, 4, 4, 5]])
    values = np.arange(6, dtype=dtype).reshape(3, 2)
    src, index = _images(dtype, (2, 2, 4, 5), seed=1), np.array([1, 0, 0])
    K = _K()
    for fn, args in [("fill_boxes", (boxes, values)), ("paste_boxes", (boxes, src, index))]:
        want = getattr(CPU, fn)(x, *args, np.empty_like(x))
        got = getattr(K, fn)(on("cuda", x), *_dev(*args), on("cuda", np.empty_like(x)))
        np.testing.assert_array_equal(host(got), want, err_msg=fn)
        xd = on("cuda", x)
        assert getattr(K, fn)(xd, *_dev(*args), xd) is xd
        np.testing.assert_array_equal(host(xd), want, err_msg=fn)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_fill_boxes_uniform_on_the_device(dtype):
    x = _images(dtype, (2, 2, 4, 5))
    boxes = np.array([[0, 3, 1, 4], [2, 2, 0, 5]])
    K = _K()
    got = host(K.fill_boxes_uniform(*_dev(x, boxes), np.random.default_rng(0),
                                    on("cuda", np.empty_like(x))))
    inside = np.zeros(x.shape, bool)
    inside[0, :, 0:3, 1:4] = True
    np.testing.assert_array_equal(got[~inside], x[~inside])
    noise = got[inside]
    assert noise.dtype == dtype and (noise >= 0).all() and (noise < 1).all()
    assert len(np.unique(noise)) == noise.size
    again = K.fill_boxes_uniform(*_dev(x, boxes), np.random.default_rng(0),
                                 on("cuda", np.empty_like(x)))
    np.testing.assert_array_equal(host(again), got)  # same seed, same noise


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", ["shift_hue", "adjust_brightness", "adjust_contrast",
                                    "adjust_saturation", "adjust_gamma"])
def test_pixel_kernels_match_cpu(kernel, dtype):
    x = _images(dtype, (3, 3, 4, 5))
    x[0, :, 0, 0] = 0.5  # a grey pixel
    x[1, :, 1, 1] = [0.2, 0.7, 0.7]  # a tie for the largest channel
    rng = np.random.default_rng(2)
    if kernel == "shift_hue":
        args = (rng.uniform(-0.5, 0.5, 3), np.array([True, True, False]))
    else:
        args = (rng.uniform(0.5, 1.5, 3).astype(dtype),)
    want = getattr(CPU, kernel)(x, *args, np.empty_like(x))
    K = _K()
    got = getattr(K, kernel)(on("cuda", x), *_dev(*args), on("cuda", np.empty_like(x)))
    np.testing.assert_allclose(host(got), want, **tol(dtype))
    xd = on("cuda", x)
    assert getattr(K, kernel)(xd, *_dev(*args), xd) is xd  # in place
    np.testing.assert_allclose(host(xd), want, **tol(dtype))
    if kernel == "adjust_contrast":  # not RGB: the channel mean is the grey level
        x2 = np.ascontiguousarray(x[:, :2])
        np.testing.assert_allclose(
            host(K.adjust_contrast(on("cuda", x2), on("cuda", args[0]), K.empty_like(on(
                "cuda", x2)))), CPU.adjust_contrast(x2, args[0], np.empty_like(x2)),
            **tol(dtype))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_add_gaussian_noise_on_the_device(dtype):
    x = np.full((2, 1, 10, 12), 3.0, dtype)
    stds = np.array([1.0, 0.0], dtype)
    K = _K()
    got = host(K.add_gaussian_noise(on("cuda", x), np.random.default_rng(0), on("cuda", stds),
                                    on("cuda", np.empty_like(x))))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got[1], 3.0)  # std 0: unchanged
    e = got[0] - 3.0
    assert abs(e.mean()) < 0.3 and 0.75 < e.std() < 1.25  # 120 draws: loose bounds
    again = K.add_gaussian_noise(on("cuda", x), np.random.default_rng(0), on("cuda", stds),
                                 on("cuda", np.empty_like(x)))
    np.testing.assert_array_equal(host(again), got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mix_samples_and_mask_bands_match_cpu(dtype):
    x = np.random.default_rng(3).standard_normal((3, 2, 4, 5)).astype(dtype)
    lam, partner = np.array([0.3, 1.0, 0.6], dtype), np.array([2, 1, 0])
    K = _K()
    want = CPU.mix_samples(x, lam, partner, np.empty_like(x))
    got = K.mix_samples(*_dev(x, lam, partner), on("cuda", np.empty_like(x)))
    np.testing.assert_allclose(host(got), want, **tol(dtype))
    flat = x.reshape(3, 40)  # any batch (N, ...)
    got = K.mix_samples(*_dev(flat, lam, partner), on("cuda", np.empty_like(flat)))
    np.testing.assert_allclose(host(got), want.reshape(3, 40), **tol(dtype))
    values = np.arange(6, dtype=dtype).reshape(3, 2)
    for axis, length in ((2, 4), (3, 5)):
        lost = np.random.default_rng(axis).random((3, length)) < 0.5
        want = CPU.mask_bands(x, lost, axis, values, np.empty_like(x))
        got = K.mask_bands(*_dev(x, lost), axis, on("cuda", values),
                           on("cuda", np.empty_like(x)))
        np.testing.assert_array_equal(host(got), want)


# -- transforms on a device batch ---------------------------------------------
SAME_ON_BOTH = [  # no batch-sized noise: the same rng gives the same batch on both devices
    A.HorizontalFlip(), A.VerticalFlip(p=1), A.Rotation(30), A.Translation(0.3),
    A.RandomResizedCrop(), A.Brightness(0.5), A.Contrast(0.5), A.Saturation(0.5), A.Hue(0.3),
    A.Gamma(), A.Cutout(3), A.RandomErasing(value=0.25, p=0.9),
    A.Compose([A.HorizontalFlip(), A.Rotation(20), A.Brightness(0.3), A.Cutout(2)]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tr", SAME_ON_BOTH, ids=lambda tr: type(tr).__name__)
def test_transform_on_device_equals_host(tr, dtype):
    x = _images(dtype, (3, 3, 4, 5))
    keep = x.copy()
    want, _ = tr(x, None, np.random.default_rng(7))
    xd = on("cuda", x)
    got, _ = tr(xd, None, np.random.default_rng(7))
    assert is_device_array(got) and got.dtype == dtype and got is not xd
    np.testing.assert_allclose(host(got), want, **tol(dtype))
    np.testing.assert_array_equal(host(xd), keep)  # the input is never modified


@pytest.mark.parametrize("cls", [A.MixUp, A.CutMix])
def test_mixing_on_device_keeps_targets_on_the_host(cls):
    x = _images(np.float32, (4, 1, 4, 5))
    t = np.array([0, 1, 2, 1])
    want, soft = cls(alpha=1.0, num_classes=3)(x, t, np.random.default_rng(8))
    got, soft_d = cls(alpha=1.0, num_classes=3)(on("cuda", x), t, np.random.default_rng(8))
    assert is_device_array(got) and type(soft_d) is np.ndarray
    np.testing.assert_allclose(host(got), want, **tol(np.float32))
    np.testing.assert_array_equal(soft_d, soft)
    with pytest.raises(ValueError, match=f"{cls.__name__}: targets are mixed on the host"):
        cls(num_classes=3)(on("cuda", x), on("cuda", t))


def test_masking_on_device_equals_host():
    x = np.random.default_rng(9).standard_normal((2, 2, 5, 6)).astype(np.float32)
    for tr in (A.FrequencyMasking(3, num_masks=2), A.TimeMasking(4, value="mean"),
               A.Compose([A.FrequencyMasking(2, value=-1.0), A.TimeMasking(3)])):
        want, _ = tr(x, None, np.random.default_rng(10))
        got, _ = tr(on("cuda", x), None, np.random.default_rng(10))
        assert is_device_array(got)
        np.testing.assert_allclose(host(got), want, **tol(np.float32))


def test_noise_transforms_on_device():
    """The noise comes from one seed on the device: check where it lands, not its values."""
    x = _images(np.float32, (3, 2, 4, 5))
    y, _ = A.GaussianNoise(0.1, p=0.5)(on("cuda", x), None, np.random.default_rng(11))
    active = np.random.default_rng(11).random(3) < 0.5
    changed = (host(y) != x).any(axis=(1, 2, 3))
    np.testing.assert_array_equal(changed, active)
    tr = A.RandomErasing(value="random", p=1.0)
    y, _ = tr(on("cuda", x), None, np.random.default_rng(12))
    erased = host(y) != x
    assert erased.any(axis=(1, 2, 3)).all()
    assert ((host(y)[erased] >= 0) & (host(y)[erased] < 1)).all()


@pytest.mark.slow
def test_kernels_compile_for_a_gpu():
    compile_for_gpu("""
        from numba import from_dtype
        from cdl.cuda import _random, augment
        states = arr(from_dtype(_random.xoroshiro128p_dtype), 1)
        f64 = T.float64
        for dt in (T.float32, T.float64):
            a2, a3, a4 = arr(dt, 2), arr(dt, 3), arr(dt, 4)
            a1, ints1, ints2, bools1 = arr(dt, 1), arr(i64, 1), arr(i64, 2), arr(b1, 1)
            check(augment._warp_affine_k, a4, arr(f64, 3), bools1, dt, a4)
            check(augment._fill_boxes_k, a4, ints2, a2, a4)
            check(augment._paste_boxes_k, a4, ints2, a4, ints1, a4)
            check(augment._shift_hue_k, a4, arr(f64, 1), bools1, a4)
            check(augment._brightness_k, a2, a1, a2)
            check(augment._contrast_k, a3, a1, a3)
            check(augment._saturation_k, a3, a1, a3)
            check(augment._gamma_k, a2, a1, a2)
            check(augment._mix_k, a2, a1, ints1, a2)
            check(augment._mask_bands_k, a4, arr(b1, 2), i64, a2, a4)
        a2, a4 = arr(T.float32, 2), arr(T.float32, 4)
        check(augment._fill_boxes_uniform32_k, states, a4, arr(i64, 2), a4)
        check(augment._noise32_k, states, a2, arr(T.float32, 1), a2)
        a2, a4 = arr(f64, 2), arr(f64, 4)
        check(augment._fill_boxes_uniform64_k, states, a4, arr(i64, 2), a4)
        check(augment._noise64_k, states, a2, arr(f64, 1), a2)
    """)
