"""Convolutional nets: the book's SimpleConvNet and DeepConvNet, and the CIFAR ResNets.

Each is a Sequential subclass whose constructor lays out the layers, so a
model reads like the book's figure; ``cdl.load`` gives back a Sequential
with the same layers. Input (C, H, W), num_classes outputs (scores for
SoftmaxCrossEntropy), He initialisation (the default of Conv2D and Affine).
"""
from cdl import layers as L
from cdl._checks import conv_output_hw, positive_int
from cdl.init import get_rng
from cdl.model import Sequential
from cdl.models._common import chw, counts


def _conv_hw(who, hw, k, s=1, p=0):
    return conv_output_hw(who, hw, (k, k), (s, s), (p, p))


class SimpleConvNet(Sequential):
    """The book's SimpleConvNet (ch. 7): conv - ReLU - pool - affine - ReLU - affine.

    x (N, C, H, W) -> scores (N, num_classes): filters 5x5 convolutions
    (stride 1, no padding), 2x2 max pooling, ``hidden`` units. input_shape
    is the per-sample (C, H, W); kernel_size the convolution's window;
    rng (seed or Generator) draws the initial weights.
    """

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, filters=30, kernel_size=5,
                 hidden=100, rng=None):
        rng = get_rng(rng)
        C, H, W = chw("SimpleConvNet", input_shape)
        num_classes = positive_int("SimpleConvNet", "num_classes", num_classes)
        oh, ow = _conv_hw("SimpleConvNet", (H, W), kernel_size)
        oh, ow = _conv_hw("SimpleConvNet", (oh, ow), 2, 2)
        super().__init__([
            L.Conv2D(C, filters, kernel_size, rng=rng), L.ReLU(), L.MaxPool2D(2),
            L.Flatten(),
            L.Affine(filters * oh * ow, hidden, rng=rng), L.ReLU(),
            L.Affine(hidden, num_classes, rng=rng),
        ], loss=L.SoftmaxCrossEntropy(), input_shape=input_shape)


class DeepConvNet(Sequential):
    """The book's DeepConvNet (ch. 8, VGG-like), layer for layer.

    x (N, C, H, W) -> scores (N, num_classes):
        conv3x3(16) ReLU conv3x3(16) ReLU maxpool2
        conv3x3(32) ReLU conv3x3(32, pad 2) ReLU maxpool2
        conv3x3(64) ReLU conv3x3(64) ReLU maxpool2
        affine(50) ReLU dropout(0.5) affine(num_classes) dropout(0.5)
    Every convolution has padding 1 except the fourth (padding 2, as in the
    book), which takes 28x28 input to 4x4 before the affine layers.
    input_shape is the per-sample (C, H, W); channels has one width per
    stage of two convolutions and a pool; hidden is the size of the hidden
    affine layer and dropout the ratio of both Dropouts; rng (seed or
    Generator) draws the initial weights.
    """

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, channels=(16, 32, 64),
                 hidden=50, dropout=0.5, rng=None):
        rng = get_rng(rng)
        C, H, W = chw("DeepConvNet", input_shape)
        num_classes = positive_int("DeepConvNet", "num_classes", num_classes)
        channels = counts("DeepConvNet", "channels", channels)
        hw, layers, cin = (H, W), [], C
        for stage, cout in enumerate(channels):
            for pad in (1, 2 if stage == 1 else 1):
                layers += [L.Conv2D(cin, cout, 3, pad=pad, rng=rng), L.ReLU()]
                hw, cin = _conv_hw("DeepConvNet", hw, 3, 1, pad), cout
            layers.append(L.MaxPool2D(2))
            hw = _conv_hw("DeepConvNet", hw, 2, 2)
        layers += [L.Flatten(),
                   L.Affine(cin * hw[0] * hw[1], hidden, rng=rng), L.ReLU(), L.Dropout(dropout),
                   L.Affine(hidden, num_classes, rng=rng), L.Dropout(dropout)]
        super().__init__(layers, loss=L.SoftmaxCrossEntropy(), input_shape=input_shape)


def basic_block(cin, cout, stride=1, rng=None):
    """ResNet basic block (He et al. 2016): [conv3x3-BN-ReLU-conv3x3-BN] + shortcut, then ReLU.

    The shortcut is the identity when the shape is kept, else a 1x1
    convolution with the block's stride followed by BatchNorm (projection,
    option B of the paper). Returns [Residual, ReLU], from cin to cout channels; rng
    (seed or Generator) draws the initial weights.
    """
    rng = get_rng(rng)
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = [L.Conv2D(cin, cout, 1, stride=stride, bias=False, rng=rng), L.BatchNorm(cout)]
    return [L.Residual(L.Conv2D(cin, cout, 3, stride=stride, pad=1, bias=False, rng=rng),
                       L.BatchNorm(cout), L.ReLU(),
                       L.Conv2D(cout, cout, 3, pad=1, bias=False, rng=rng), L.BatchNorm(cout),
                       shortcut=shortcut),
            L.ReLU()]


class ResNet(Sequential):
    """The CIFAR ResNets of He et al. 2016, sec. 4.2 (ResNet-6n+2), for 28x28 to 32x32 images.

    x (N, C, H, W) -> scores (N, num_classes): conv3x3(16)-BN-ReLU, then one
    stage per entry of ``channels`` (16, 32, 64) with n = ``blocks`` basic
    blocks each (the first block of every later stage halves H and W), global
    average pooling and an affine layer: 6n + 2 weight layers. blocks=3, 5, 9
    are ResNet-20, -32, -56 (``resnet20`` etc.); the default blocks=1 is the
    small ResNet-8 that ``cdl bench`` times. input_shape is the per-sample
    (C, H, W); rng (seed or Generator) draws the initial weights.

    Shortcuts: identity inside a stage; where a stage starts, a 1x1 stride-2
    convolution with BatchNorm (projection, the paper's option B; its CIFAR
    nets use option A, zero-padded identity, which adds no parameters: 0.27M
    for ResNet-20 there, a few thousand more here).
    """

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, channels=(16, 32, 64),
                 blocks=1, rng=None):
        rng = get_rng(rng)
        C = chw("ResNet", input_shape)[0]
        blocks = positive_int("ResNet", "blocks", blocks)
        num_classes = positive_int("ResNet", "num_classes", num_classes)
        channels = counts("ResNet", "channels", channels)
        layers = [L.Conv2D(C, channels[0], 3, pad=1, bias=False, rng=rng),
                  L.BatchNorm(channels[0]), L.ReLU()]
        cin = channels[0]
        for stage, cout in enumerate(channels):
            for b in range(blocks):
                layers += basic_block(cin, cout, 2 if stage > 0 and b == 0 else 1, rng)
                cin = cout
        layers += [L.GlobalAvgPool2D(), L.Affine(cin, num_classes, rng=rng)]
        super().__init__(layers, loss=L.SoftmaxCrossEntropy(), input_shape=input_shape)


def resnet20(input_shape=(3, 32, 32), num_classes=10, rng=None, **options):
    """ResNet(blocks=3): ResNet-20 (He et al. 2016, table 6).

    input_shape, num_classes, rng and the **options (channels) go to ResNet.
    """
    return ResNet(input_shape, num_classes, blocks=3, rng=rng, **options)


def resnet32(input_shape=(3, 32, 32), num_classes=10, rng=None, **options):
    """ResNet(blocks=5): ResNet-32; input_shape, num_classes, rng, **options as resnet20."""
    return ResNet(input_shape, num_classes, blocks=5, rng=rng, **options)


def resnet56(input_shape=(3, 32, 32), num_classes=10, rng=None, **options):
    """ResNet(blocks=9): ResNet-56; input_shape, num_classes, rng, **options as resnet20."""
    return ResNet(input_shape, num_classes, blocks=9, rng=rng, **options)
