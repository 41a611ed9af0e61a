"""Sequential.summary(): one row per layer, output shapes, parameter and activation totals."""
import re

import numpy as np
import pytest

from cdl import Sequential, layers as L
from cdl.model import walk
from cdl.models import MODELS, GoogLeNet, ResNet, small_cnn


def _rows(text):
    """{index: (type, shape text, params, activation text)} of the table's layer rows."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\d+)\s+(\w+)\s+(\([\d, ]*\))\s+([\d,]+)\s+([\d.]+ \w+)", line)
        if m:
            out[int(m[1])] = (m[2], m[3], int(m[4].replace(",", "")), m[5])
    return out


def _total(text, what):
    return int(re.search(rf"^{what}: ([\d,]+)$", text, re.M)[1].replace(",", ""))


def test_small_cnn_summary_by_hand(capsys):
    net = small_cnn(rng=0)
    text = net.summary()
    assert capsys.readouterr().out.strip() == text.strip()  # prints it, and returns it
    rows = _rows(text)
    assert [rows[i][0] for i in range(len(net.layers))] == [l.name for l in net.layers]
    assert rows[0] == ("Conv2D", "(32, 8, 8)", 32 * 9 + 32, "8.0 KiB")  # 32*8*8 floats
    assert rows[4][1:] == ("(32, 4, 4)", 0, "2.0 KiB")
    assert rows[8] == ("Affine", "(10,)", 650, "40 B")
    assert _total(text, "Total params") == net.num_params() == sum(r[2] for r in rows.values())
    assert "Activations per sample: 36.5 KiB" in text  # 8+8+8+8+2+2 KiB + 256+256+40 B
    assert text.splitlines()[0] == "Sequential: input (1, 8, 8), float32"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_totals(name):
    net = MODELS[name](rng=0)
    text = net.summary(print_fn=None)
    rows = _rows(text)
    assert len(rows) == len(net.layers)
    assert _total(text, "Total params") == net.num_params() == sum(r[2] for r in rows.values())
    assert _total(text, "Trainable params") == sum(p.size for p in net.params.values())
    assert rows[len(net.layers) - 1][1] == "(10,)"
    # the wrapping of forward for the table is gone afterwards
    assert not any("forward" in vars(layer) for _, layer in walk(net.layers))


def test_containers_count_their_insides_once():
    net = GoogLeNet(rng=0)
    rows = _rows(net.summary(print_fn=None))
    # inception 3a on 16x16: branches 8+8 | 12+12+16+16 | 2+2+4+4 | 24+4+4 channels,
    # plus the concatenated 32: 148 planes of 1 KiB (a branch's Chain adds nothing)
    assert rows[7] == ("Concat", "(32, 16, 16)", 2598, "148.0 KiB")
    res = ResNet(rng=0)
    r = _rows(res.summary(print_fn=None))[3]  # conv BN ReLU conv BN, then the sum: 6 x 49 KiB
    assert r[:2] == ("Residual", "(16, 28, 28)") and r[3] == "294.0 KiB"
    assert "Buffers (not trained): 672" in res.summary(print_fn=None)


def test_frozen_layers_and_float64():
    net = small_cnn(rng=0).astype(np.float64)
    net.layers[0].trainable = False
    text = net.summary(print_fn=None)
    assert _total(text, "Non-trainable params") == 320
    assert _total(text, "Trainable params") == net.num_params() - 320
    assert _rows(text)[0][3] == "16.0 KiB" and "float64" in text.splitlines()[0]


def test_input_shape_argument_and_errors():
    net = Sequential([L.Flatten(), L.Affine(12, 3)], loss=L.SoftmaxCrossEntropy())
    with pytest.raises(ValueError, match="pass input_shape"):
        net.summary()
    assert _rows(net.summary((3, 2, 2), print_fn=None))[1][1:3] == ("(3,)", 39)
    with pytest.raises(ValueError, match="input_shape"):
        Sequential([L.ReLU()], input_shape=(0, 3))
    assert Sequential([L.ReLU()], input_shape=[2, 3]).input_shape == (2, 3)
