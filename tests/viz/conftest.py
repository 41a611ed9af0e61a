"""Fixtures of the cdl.viz tests: the digits and a small CNN."""
import pytest

import cdl
from cdl import layers as L


@pytest.fixture
def digits():
    (x, t), (xt, tt) = cdl.data.load_digits()
    return x[:200], t[:200], xt[:120], tt[:120]


@pytest.fixture
def cnn(rng):
    return cdl.Sequential([L.Conv2D(1, 6, 3, pad=1, rng=rng), L.ReLU(), L.MaxPool2D(2),
                           L.Flatten(), L.Affine(6 * 4 * 4, 10, rng=rng)],
                          loss=L.SoftmaxCrossEntropy(), input_shape=(1, 8, 8))
