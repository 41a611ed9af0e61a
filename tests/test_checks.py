"""cdl._checks: the shared argument checks (ints refused unless they are ints, and bounded)."""
import numpy as np
import pytest

from cdl._checks import (INT32_MAX, check_finite, check_int, device_c_contiguous, pair,
                         positive_int)


@pytest.mark.parametrize("v", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_check_int_accepts_python_and_numpy_ints(v):
    out = positive_int("f", "size", v)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("v, match", [
    (2.7, r"f: size must be a positive int, got 2\.7 \(float\)"),
    (2.0, r"f: size must be a positive int, got 2\.0 \(float\)"),
    (np.float32(2), r"size must be a positive int"),
    (True, r"size must be a positive int, got True"),
    ("2", r"size must be a positive int"),
    (0, r"f: size must be a positive int, got 0"),
    (2**31, r"f: size = 2147483648 is too large \(at most 2147483647\)"),
])
def test_check_int_refuses_with_the_name_and_the_value(v, match):
    with pytest.raises(ValueError, match=match):
        check_int("f", "size", v, 1, INT32_MAX)


def test_check_int_minimum_zero_and_no_maximum():
    assert check_int("f", "pad", 0, minimum=0) == 0
    assert check_int("f", "n", 2**40, minimum=0) == 2**40
    with pytest.raises(ValueError, match="pad must be an int >= 0, got -1"):
        check_int("f", "pad", -1, minimum=0)


def test_pair_bounds_each_side_to_int32():
    assert pair("L", "stride", (np.int64(2), 3), 1) == (2, 3)
    assert pair("L", "stride", INT32_MAX, 1) == (INT32_MAX, INT32_MAX)
    for bad in [2**31, (1, 2**31), 2.0, (1, 1.5)]:
        with pytest.raises(ValueError, match="L: stride"):
            pair("L", "stride", bad, 1)


def test_check_finite_counts_the_bad_values_and_names_the_caller():
    check_finite("f", np.ones((2, 3)))
    x = np.ones((2, 3))
    x[0, 1], x[1, 2] = np.nan, -np.inf
    with pytest.raises(ValueError, match=r"f: labels of shape \(2, 3\) has 2 NaN/Inf values"):
        check_finite("f", x, "labels")


class _Strided:
    """A stand-in for a device array: shape, strides and dtype, no flags."""

    def __init__(self, a):
        self.shape, self.strides, self.dtype = a.shape, a.strides, a.dtype


@pytest.mark.parametrize("view, contiguous", [
    (lambda a: a, True), (lambda a: a[:, ::2], False), (lambda a: a.T, False),
    (lambda a: a[:1], True), (lambda a: a[:, :1], False), (lambda a: a[:, :1][:1], True),
])
def test_device_c_contiguous_reads_the_strides(view, contiguous):
    v = view(np.zeros((3, 4), np.float32))
    assert device_c_contiguous(v) is contiguous  # from flags
    assert device_c_contiguous(_Strided(v)) is contiguous  # from the strides alone
