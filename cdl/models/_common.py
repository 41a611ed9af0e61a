"""Pieces the model builders share: argument checks, width scaling, conv-ReLU units."""
import math

from cdl import layers as L
from cdl._checks import positive_int


def chw(who, input_shape):
    """input_shape as a (C, H, W) tuple of positive ints, or ValueError naming who."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__") \
            or len(input_shape) != 3:
        raise ValueError(f"{who}: input_shape must be (C, H, W), got {input_shape!r}")
    return tuple(positive_int(who, "input_shape entry", d) for d in input_shape)


def counts(who, name, values):
    """values (an int or a non-empty sequence of them) as a tuple of positive ints."""
    if isinstance(values, (int,)) and not isinstance(values, bool):
        values = (values,)
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not len(values):
        raise ValueError(f"{who}: {name} must be a non-empty sequence of positive ints, "
                         f"got {values!r}")
    return tuple(positive_int(who, f"{name} entry", v) for v in values)


def width_factor(who, width):
    """width as a finite float > 0 (a multiplier of every layer's channel count)."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) \
            or not math.isfinite(width) or width <= 0:
        raise ValueError(f"{who}: width must be a number > 0, got {width!r}")
    return float(width)


def scaled(channels, width):
    """max(1, channels * width rounded half up): a paper's width times the width factor."""
    return max(1, int(channels * width + 0.5))


def conv_unit(cin, cout, kernel_size, pad=0, batch_norm=False, rng=None):
    """[Conv2D, ReLU], or [Conv2D without bias, BatchNorm, ReLU] (BN's beta is the bias)."""
    conv = L.Conv2D(cin, cout, kernel_size, pad=pad, bias=not batch_norm, rng=rng)
    return [conv, L.BatchNorm(cout), L.ReLU()] if batch_norm else [conv, L.ReLU()]
