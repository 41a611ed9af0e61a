"""Binarized networks (Courbariaux, Hubara et al. 2016): BinaryMLP and BinaryConvNet.

Both follow the BNN paper's layout: every product is binary (a first layer
takes real pixels against binary weights), each is followed by BatchNorm,
and the next layer's input binarization is the activation (its STE is the
paper's hard-tanh gradient). The output layer ends in BatchNorm too, whose
scores go to the softmax cross-entropy. ``float_twin`` builds the same
shape with Affine/Conv2D and ReLU, for comparisons. ``net.pack()`` turns a
trained model into 1-bit weights and integer thresholds (``cdl.packed``).
"""
import math

from cdl import layers as L
from cdl._checks import positive_int
from cdl.init import get_rng
from cdl.model import Sequential
from cdl.models._common import chw, counts


def _mlp_layers(input_shape, num_classes, hidden, dropout, scale, binary, rng):
    who = "BinaryMLP" if binary else "BinaryMLP.float_twin"
    sizes = [math.prod(chw(who, input_shape)), *counts(who, "hidden", hidden),
             positive_int(who, "num_classes", num_classes)]
    layers = [L.Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        if binary:
            layers.append(L.BinaryAffine(a, b, scale=scale, bias=False, binarize_input=i > 0,
                                         rng=rng))
        else:
            layers += [L.ReLU()] if i > 0 else []
            layers.append(L.Affine(a, b, bias=False, rng=rng))
        layers.append(L.BatchNorm(b))  # so no layer needs a bias
        if dropout and i < len(sizes) - 2:
            layers.append(L.Dropout(dropout))
    return layers


class BinaryMLP(Sequential):
    """Binarized MLP: [BinaryAffine -> BatchNorm] per layer, signs between them.

    x (N, C, H, W) or (N, D) -> scores (N, num_classes). input_shape is the
    per-sample (C, H, W); hidden the hidden layers' sizes, three of 2048 units
    by default (the BNN paper's MNIST net has 3 x 4096); dropout is the ratio
    of a Dropout after each hidden BatchNorm (0: none); scale=True turns on
    the XNOR-Net scaling of every BinaryAffine; rng (seed or Generator) draws
    the initial weights.
    """

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, hidden=(2048, 2048, 2048),
                 dropout=0.0, scale=False, rng=None):
        super().__init__(_mlp_layers(input_shape, num_classes, hidden, dropout, scale, True,
                                     get_rng(rng)), loss=L.SoftmaxCrossEntropy(),
                         input_shape=input_shape)

    @staticmethod
    def float_twin(input_shape=(1, 28, 28), num_classes=10, hidden=(2048, 2048, 2048),
                   dropout=0.0, rng=None):
        """The same shape in floating point: Affine -> BatchNorm -> ReLU."""
        return Sequential(_mlp_layers(input_shape, num_classes, hidden, dropout, False, False,
                                      get_rng(rng)), loss=L.SoftmaxCrossEntropy(),
                          input_shape=input_shape)


def _cnn_layers(input_shape, num_classes, channels, hidden, scale, binary, rng):
    who = "BinaryConvNet" if binary else "BinaryConvNet.float_twin"
    C, H, W = chw(who, input_shape)
    channels = counts(who, "channels", channels)
    if len(channels) != 2:
        raise ValueError(f"{who}: channels must be two ints (c1, c2), got {channels!r}")
    c1, c2 = channels
    hidden = positive_int(who, "hidden", hidden)
    num_classes = positive_int(who, "num_classes", num_classes)
    if H < 4 or W < 4:
        raise ValueError(f"{who}: input {H}x{W} is too small for two 2x2 poolings")
    conv, affine = (L.BinaryConv2D, L.BinaryAffine) if binary else (L.Conv2D, L.Affine)

    def block(cin, cout, first=False, pool=False):
        kw = {"scale": scale, "binarize_input": not first} if binary else {}
        kw["bias"] = False  # BatchNorm follows: its beta is the bias
        out = [] if (first or binary) else [L.ReLU()]
        out.append(conv(cin, cout, 3, pad=1, rng=rng, **kw))
        if pool:
            out.append(L.MaxPool2D(2))
        return out + [L.BatchNorm(cout)]

    layers = (block(C, c1, first=True) + block(c1, c1, pool=True)
              + block(c1, c2) + block(c2, c2, pool=True) + [L.Flatten()])
    flat = c2 * (H // 4) * (W // 4)
    for i, (a, b) in enumerate([(flat, hidden), (hidden, num_classes)]):
        if binary:
            layers.append(affine(a, b, scale=scale, bias=False, rng=rng))
        else:
            layers += [L.ReLU(), affine(a, b, bias=False, rng=rng)]
        layers.append(L.BatchNorm(b))
    return layers


class BinaryConvNet(Sequential):
    """Binarized VGG-style CNN (the BNN paper's CIFAR-10 net, scaled down).

    x (N, C, H, W) -> scores (N, num_classes):
    2 x [conv3x3(c1)] with a 2x2 max pool, 2 x [conv3x3(c2)] with a pool,
    then a hidden BinaryAffine and the output layer; BatchNorm after every
    product (after the pool where there is one, as in the paper). H and W
    should be multiples of 4. input_shape is the per-sample (C, H, W);
    channels the pair (c1, c2); hidden the hidden layer's size; scale=True
    turns on XNOR-Net scaling in every binary layer; rng (seed or Generator)
    draws the initial weights.
    """

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, channels=(64, 128), hidden=512,
                 scale=False, rng=None):
        super().__init__(_cnn_layers(input_shape, num_classes, channels, hidden, scale, True,
                                     get_rng(rng)), loss=L.SoftmaxCrossEntropy(),
                         input_shape=input_shape)

    @staticmethod
    def float_twin(input_shape=(1, 28, 28), num_classes=10, channels=(64, 128), hidden=512,
                   rng=None):
        """The same shape in floating point: Conv2D/Affine -> [pool] -> BatchNorm -> ReLU."""
        return Sequential(_cnn_layers(input_shape, num_classes, channels, hidden, False, False,
                                      get_rng(rng)), loss=L.SoftmaxCrossEntropy(),
                          input_shape=input_shape)
