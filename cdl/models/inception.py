"""GoogLeNet (Szegedy et al. 2015) and its Inception module, scaled to small images.

An Inception module is a ``Concat`` of four branches over the same input,
joined along channels; ``cdl.load`` gives it back as that Concat.
"""
from cdl import layers as L
from cdl._checks import positive_int
from cdl.init import get_rng
from cdl.model import Sequential
from cdl.models._common import chw, conv_unit, scaled, width_factor


def Inception(in_channels, c1, c3r, c3, c5r, c5, pool_proj, batch_norm=False,  # noqa: N802
              rng=None):
    """Inception module (Szegedy et al. 2015, fig. 2b). x (N, in, H, W) -> (N, out, H, W).

    Four branches, each convolution followed by ReLU, concatenated on channels:
        conv1x1(c1)
        conv1x1(c3r) -> conv3x3(c3, pad 1)
        conv1x1(c5r) -> conv5x5(c5, pad 2)
        maxpool3x3(stride 1, pad 1) -> conv1x1(pool_proj)
    with out = c1 + c3 + c5 + pool_proj and in = in_channels. The 1x1
    "reductions" c3r and c5r cut the channels that the costly 3x3 and 5x5
    convolutions see. batch_norm=True puts BatchNorm between each
    convolution and its ReLU; rng (seed or Generator) draws the initial
    weights. Returns an
    ``L.Concat`` (a function named like a layer class because it is used as
    one; what it builds is a plain Concat).
    """
    rng = get_rng(rng)
    cin, c1, c3r, c3, c5r, c5, pool_proj = (
        positive_int("Inception", name, v) for name, v in
        zip(("in_channels", "c1", "c3r", "c3", "c5r", "c5", "pool_proj"),
            (in_channels, c1, c3r, c3, c5r, c5, pool_proj)))
    unit = lambda a, b, k, pad=0: conv_unit(a, b, k, pad, batch_norm, rng)  # noqa: E731
    return L.Concat(unit(cin, c1, 1),
                    unit(cin, c3r, 1) + unit(c3r, c3, 3, 1),
                    unit(cin, c5r, 1) + unit(c5r, c5, 5, 2),
                    [L.MaxPool2D(3, stride=1, pad=1)] + unit(cin, pool_proj, 1))


# Szegedy et al. 2015, table 1: (c1, c3r, c3, c5r, c5, pool_proj) of each module,
# "M" a 3x3 stride-2 max pooling.
GOOGLENET_LAYOUT = (
    ("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)), "M",
    ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)), ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)), "M",
    ("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128)),
)


class GoogLeNet(Sequential):
    """GoogLeNet (Szegedy et al. 2015, table 1) for 28x28-32x32 images, at 1/8 width.

    x (N, C, H, W) -> scores (N, num_classes):
        stem: conv3x3(64) ReLU conv1x1(64) ReLU conv3x3(192) ReLU maxpool3/2
        inception 3a 3b, maxpool3/2, 4a 4b 4c 4d 4e, maxpool3/2, 5a 5b
        global average pooling, dropout(0.4), affine(num_classes)
    Every channel count is table 1's times ``width`` (default 1/8, so 5b
    puts out 128 channels instead of 1024); the max poolings (3x3, stride 2,
    padding 1) take 32x32 to 16, 8, 4 (28x28 to 14, 7, 4). Against the paper:
    the stem's 7x7 stride-2 convolution and first pooling become a 3x3
    convolution (the images are 7x smaller), no local response
    normalisation, and no auxiliary classifiers (a Sequential has one
    output). ``batch_norm=True`` puts BatchNorm before every ReLU, as
    Inception-v2 does. input_shape is the per-sample (C, H, W); dropout is
    the ratio of the Dropout before the classifier; rng (seed or Generator)
    draws the initial weights.
    """

    def __init__(self, input_shape=(3, 32, 32), num_classes=10, width=0.125, dropout=0.4,
                 batch_norm=False, rng=None):
        rng = get_rng(rng)
        C, H, W = chw("GoogLeNet", input_shape)
        width = width_factor("GoogLeNet", width)
        num_classes = positive_int("GoogLeNet", "num_classes", num_classes)
        s64, s192 = scaled(64, width), scaled(192, width)
        layers = [*conv_unit(C, s64, 3, 1, batch_norm, rng),
                  *conv_unit(s64, s64, 1, 0, batch_norm, rng),
                  *conv_unit(s64, s192, 3, 1, batch_norm, rng), L.MaxPool2D(3, stride=2, pad=1)]
        cin = s192
        for item in GOOGLENET_LAYOUT:
            if item == "M":
                layers.append(L.MaxPool2D(3, stride=2, pad=1))
                continue
            c1, c3r, c3, c5r, c5, pool_proj = (scaled(c, width) for c in item[1])
            layers.append(Inception(cin, c1, c3r, c3, c5r, c5, pool_proj, batch_norm, rng))
            cin = c1 + c3 + c5 + pool_proj
        layers += [L.GlobalAvgPool2D(), L.Dropout(dropout), L.Affine(cin, num_classes, rng=rng)]
        super().__init__(layers, loss=L.SoftmaxCrossEntropy(), input_shape=(C, H, W))
