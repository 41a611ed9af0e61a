"""cdl.models._common: the argument checks, width scaling and conv units the builders share."""
import pytest

from cdl import layers as L
from cdl.models import _common


def test_chw():
    assert _common.chw("M", [3, 32, 32]) == (3, 32, 32)
    for bad in [(32, 32), "abc", 3, (3, 0, 8)]:
        with pytest.raises(ValueError, match="M: input_shape"):
            _common.chw("M", bad)


def test_counts():
    assert _common.counts("M", "blocks", 3) == (3,)
    assert _common.counts("M", "blocks", [1, 2]) == (1, 2)
    for bad in [(), "12", True, [1, 0], 2.0]:
        with pytest.raises(ValueError, match="M: blocks"):
            _common.counts("M", "blocks", bad)


def test_width_factor_and_scaled():
    assert _common.width_factor("M", 1) == 1.0
    for bad in [0, -1, float("inf"), float("nan"), True, "2"]:
        with pytest.raises(ValueError, match="M: width must be a number > 0"):
            _common.width_factor("M", bad)
    assert _common.scaled(64, 1 / 8) == 8
    assert _common.scaled(3, 0.5) == 2  # 1.5 rounds half up
    assert _common.scaled(64, 1 / 1000) == 1  # never 0 channels


def test_conv_unit():
    conv, relu = _common.conv_unit(3, 4, 3, pad=1, rng=0)
    assert isinstance(conv, L.Conv2D) and isinstance(relu, L.ReLU) and conv.bias
    conv, bn, relu = _common.conv_unit(3, 4, 3, batch_norm=True, rng=0)
    assert not conv.bias and "b" not in conv.params
    assert isinstance(bn, L.BatchNorm) and bn.params["gamma"].shape == (4,)
