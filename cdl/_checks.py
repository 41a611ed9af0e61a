"""Input validation shared by layers, ops and kernel wrappers.

Every error names who complained (a layer or an op) and the shapes involved,
so a user can find the bad call without a debugger. Compiled code only ever
sees arrays that passed through here.
"""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

INT32_MAX = 2**31 - 1  # the compiled loops (Cython ``int``, int32 outputs) take sizes below 2^31


def check_int(who, name, v, minimum=1, maximum=None):
    """v as a Python int with minimum <= v (<= maximum), or ValueError naming who, name and v.

    Python ints and NumPy integers only: bools and floats (2.7, and 2.0 too) are
    refused rather than truncated. ``maximum`` is the bound of the compiled
    code that receives v (INT32_MAX for a C ``int``), checked here so that it
    never overflows there.
    """
    kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{who}: {name} must be {kind}, got {v!r} ({type(v).__name__})")
    if v < minimum:
        raise ValueError(f"{who}: {name} must be {kind}, got {v!r}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{who}: {name} = {v!r} is too large (at most {maximum})")
    return int(v)


def positive_int(who, name, v, maximum=None):
    """check_int with minimum 1: layer sizes, batch sizes."""
    return check_int(who, name, v, 1, maximum)


def is_device_array(x):
    """True when x is a GPU array: a numba.cuda device array (anything with a CUDA array
    interface) or a CUDA simulator's array (NUMBA_ENABLE_CUDASIM=1)."""
    if isinstance(x, np.ndarray):
        return False
    return hasattr(x, "__cuda_array_interface__") \
        or type(x).__module__.startswith("numba.cuda.simulator")


def device_c_contiguous(x):
    """C-contiguity of a device array, read from its strides (no copy, no host access)."""
    flags = getattr(x, "flags", None)
    if flags is not None:
        try:
            return bool(flags["C_CONTIGUOUS"])
        except (KeyError, TypeError):  # flags of another kind: the strides tell
            pass
    expected = x.dtype.itemsize
    for size, stride in zip(reversed(x.shape), reversed(x.strides)):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def check_float(who, x, ndim=None, what="input", layout=None, allow_empty=False):
    """Return x as a C-contiguous float32/float64 array, or raise ValueError.

    Integer, bool and float16 arrays are refused rather than cast silently
    (a uint8 image fed unscaled is a bug worth hearing about). Non-contiguous
    NumPy arrays are copied to C order: that is the documented cast. Device
    arrays get the same checks of dtype, ndim and sizes; they must already be
    C-contiguous (a copy would be a device kernel the caller should ask for).
    """
    device = is_device_array(x)
    if not device and not isinstance(x, np.ndarray):
        raise ValueError(f"{who}: {what} must be a NumPy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{who}: {what} must be float32 or float64, got {x.dtype} of shape {x.shape} "
            f"(cast it, e.g. x.astype(np.float32))")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            hint = f" {layout}" if layout else ""
            raise ValueError(f"{who}: expected {want}{hint} {what}, got shape {x.shape}")
    if not allow_empty and x.ndim > 0 and x.shape[0] == 0:
        raise ValueError(f"{who}: empty batch, {what} shape {x.shape}")
    if x.ndim > 0 and 0 in x.shape[1:]:
        raise ValueError(f"{who}: {what} has a zero-sized dimension, shape {x.shape}")
    if device:
        if not device_c_contiguous(x):
            raise ValueError(f"{who}: {what} on the GPU must be C-contiguous, got strides "
                             f"{x.strides} for shape {x.shape}")
        return x
    return np.ascontiguousarray(x)


def pair(who, name, v, minimum):
    """Normalise an int or a 2-tuple to (a, b), each an int in [minimum, INT32_MAX]
    (geometry reaches the compiled loops as C ints)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{who}: {name} must be an int or a pair, got {v!r}")
        a, b = v
    else:
        a = b = v
    return (check_int(who, name, a, minimum, INT32_MAX),
            check_int(who, name, b, minimum, INT32_MAX))


def conv_output_hw(who, in_hw, kernel, stride, pad):
    """(OH, OW) of a sliding window, or ValueError when the window does not fit."""
    (H, W), (kh, kw), (sh, sw), (ph, pw) = in_hw, kernel, stride, pad
    if kh > H + 2 * ph or kw > W + 2 * pw:
        raise ValueError(
            f"{who}: kernel {kh}x{kw} is larger than the padded input "
            f"{H + 2 * ph}x{W + 2 * pw} (input {H}x{W}, pad {ph},{pw})")
    oh, ow = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    if max(oh, ow) > INT32_MAX:
        raise ValueError(f"{who}: output of {oh}x{ow} pixels (input {H}x{W}, pad {ph},{pw}, "
                         f"stride {sh},{sw}) is too large: each side at most {INT32_MAX}")
    # the products too: a 4x4 image with pad 2^15 has sides that fit a C int but asks for
    # 2^32 windows (a 16 GiB im2col), and a 2^16 x 2^16 kernel has 2^32 taps per channel
    if oh * ow > INT32_MAX or kh * kw > INT32_MAX:
        big, what = (oh * ow, f"output of {oh}x{ow}") if oh * ow > INT32_MAX \
            else (kh * kw, f"kernel of {kh}x{kw}")
        raise ValueError(f"{who}: {what} = {big} positions (input {H}x{W}, pad {ph},{pw}, "
                         f"stride {sh},{sw}) is too large: at most {INT32_MAX}")
    return oh, ow


def check_finite(who, x, what="input"):
    """ValueError when x holds NaN or Inf."""
    if not np.isfinite(x).all():
        bad = int(x.size - np.isfinite(x).sum())
        raise ValueError(f"{who}: {what} of shape {x.shape} has {bad} NaN/Inf values")
