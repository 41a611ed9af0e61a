"""Small models for the shipped 8x8 digits: the CNN of ``cdl train`` and an MLP."""
import math

from cdl import layers as L
from cdl.init import get_rng
from cdl.model import Sequential


def small_cnn(input_shape=(1, 8, 8), num_classes=10, channels=32, hidden=64, rng=None):
    """conv3x3-relu-conv3x3-relu-maxpool2-affine-relu-affine: the default of ``cdl train``.

    input_shape is the per-sample (C, H, W), num_classes the size of the
    output; channels is the width of both convolutions and hidden that of the
    hidden Affine; rng (seed or Generator) draws the initial weights.
    """
    rng = get_rng(rng)
    C, H, W = input_shape
    flat = channels * (H // 2) * (W // 2)
    return Sequential([
        L.Conv2D(C, channels, 3, pad=1, rng=rng), L.ReLU(),
        L.Conv2D(channels, channels, 3, pad=1, rng=rng), L.ReLU(),
        L.MaxPool2D(2),
        L.Flatten(),
        L.Affine(flat, hidden, rng=rng), L.ReLU(),
        L.Affine(hidden, num_classes, rng=rng),
    ], loss=L.SoftmaxCrossEntropy(), input_shape=input_shape)


def mlp(input_shape=(1, 8, 8), num_classes=10, hidden=(100, 100), rng=None):
    """Affine-ReLU stack (the book's MultiLayerNet) on flattened input.

    input_shape is the per-sample (C, H, W), num_classes the size of the
    output, hidden the sizes of the hidden layers in order; rng (seed or
    Generator) draws the initial weights.
    """
    rng = get_rng(rng)
    sizes = [math.prod(input_shape), *hidden]
    layers = [L.Flatten()]
    for a, b in zip(sizes, sizes[1:]):
        layers += [L.Affine(a, b, rng=rng), L.ReLU()]
    layers.append(L.Affine(sizes[-1], num_classes, rng=rng))
    return Sequential(layers, loss=L.SoftmaxCrossEntropy(), input_shape=input_shape)

