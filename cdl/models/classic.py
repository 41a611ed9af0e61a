"""AlexNet and VGG, the ImageNet classics, scaled to 28x28-32x32 images and small widths.

Both are Sequential subclasses, like the nets of ``cdl.models.convnets``:
input (C, H, W), num_classes scores for SoftmaxCrossEntropy, He
initialisation. The paper layouts are kept (convolution stacks, then three
fully-connected layers with dropout); the widths shrink so that they train
on a laptop's cores, and the down-sampling adapts to small images (see each
class). Both also take the 8x8 digits of ``cdl train``.
"""
from cdl import layers as L
from cdl._checks import conv_output_hw, positive_int
from cdl.init import get_rng
from cdl.model import Sequential
from cdl.models._common import chw, conv_unit, scaled, width_factor

# Simonyan & Zisserman 2015, table 1: configurations A (11 weight layers), B (13),
# D (16) and E (19); numbers are 3x3 convolutions' channels, "M" a 2x2 max pooling.
VGG_LAYOUTS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


class VGG(Sequential):
    """VGG-11/13/16/19 (Simonyan & Zisserman 2015, table 1) for small images.

    x (N, C, H, W) -> scores (N, num_classes): the configuration's 3x3
    convolutions (padding 1, ReLU) and 2x2 max poolings, then
    affine(hidden)-ReLU-dropout, affine(hidden)-ReLU-dropout, affine(num_classes).
    Every channel count is the paper's times ``width`` (default 1/8: 8 to 64
    channels), ``hidden`` defaults to 4096 * width (512).

    Small images: a pooling is left out once the plane is below 2x2, so the
    five poolings take 32x32 to 1x1 and 28x28 to 14, 7, 3, 1 (the fifth is
    dropped; 8x8 keeps three). ``batch_norm=True`` puts BatchNorm between
    each convolution and its ReLU (the paper has none). input_shape is the
    per-sample (C, H, W); depth picks the configuration (11, 13, 16 or 19
    weight layers); dropout is the ratio of both Dropouts; rng (seed or
    Generator) draws the initial weights.
    """

    def __init__(self, input_shape=(3, 32, 32), num_classes=10, depth=11, width=0.125,
                 hidden=None, dropout=0.5, batch_norm=False, rng=None):
        rng = get_rng(rng)
        C, H, W = chw("VGG", input_shape)
        if depth not in VGG_LAYOUTS:
            raise ValueError(f"VGG: depth must be one of {sorted(VGG_LAYOUTS)}, got {depth!r}")
        width = width_factor("VGG", width)
        hidden = scaled(4096, width) if hidden is None else positive_int("VGG", "hidden", hidden)
        num_classes = positive_int("VGG", "num_classes", num_classes)
        layers, cin, hw = [], C, (H, W)
        for item in VGG_LAYOUTS[depth]:
            if item == "M":
                if min(hw) >= 2:
                    layers.append(L.MaxPool2D(2))
                    hw = conv_output_hw("VGG", hw, (2, 2), (2, 2), (0, 0))
                continue
            cout = scaled(item, width)
            layers += conv_unit(cin, cout, 3, pad=1, batch_norm=batch_norm, rng=rng)
            cin = cout
        layers += [L.Flatten(),
                   L.Affine(cin * hw[0] * hw[1], hidden, rng=rng), L.ReLU(), L.Dropout(dropout),
                   L.Affine(hidden, hidden, rng=rng), L.ReLU(), L.Dropout(dropout),
                   L.Affine(hidden, num_classes, rng=rng)]
        super().__init__(layers, loss=L.SoftmaxCrossEntropy(), input_shape=(C, H, W))


def vgg11(input_shape=(3, 32, 32), num_classes=10, rng=None, **options):
    """VGG(depth=11): 8 convolutions and 3 affine layers (configuration A).

    input_shape, num_classes, rng and the **options (width, hidden, dropout,
    batch_norm) go to VGG.
    """
    return VGG(input_shape, num_classes, depth=11, rng=rng, **options)


def vgg16(input_shape=(3, 32, 32), num_classes=10, rng=None, **options):
    """VGG(depth=16): 13 convolutions and 3 affine layers (configuration D).

    input_shape, num_classes, rng and **options as for vgg11.
    """
    return VGG(input_shape, num_classes, depth=16, rng=rng, **options)


class AlexNet(Sequential):
    """AlexNet (Krizhevsky, Sutskever & Hinton 2012) adapted to 28x28-32x32 images.

    x (N, C, H, W) -> scores (N, num_classes):
        conv5x5(c1, pad 2) ReLU maxpool3/2
        conv5x5(c2, pad 2) ReLU maxpool3/2
        conv3x3(c3) ReLU conv3x3(c4) ReLU conv3x3(c5) ReLU maxpool3/2
        affine(hidden) ReLU dropout  affine(hidden) ReLU dropout  affine(num_classes)
    The paper's overlapping 3x3 stride-2 pooling, with padding 1 so that
    32x32 goes to 16, 8, 4 (28x28 to 14, 7, 4; 8x8 to 4, 2, 1). Against the
    paper: the 11x11 stride-4 first convolution becomes 5x5 stride 1 (the
    images are 7x smaller), no local response normalisation, one group
    instead of two GPUs' halves, and channels (96, 256, 384, 384, 256) and
    4096 hidden units scaled down to ``channels`` and ``hidden``.
    input_shape is the per-sample (C, H, W); dropout is the ratio of both
    Dropouts; rng (seed or Generator) draws the initial weights.
    """

    def __init__(self, input_shape=(3, 32, 32), num_classes=10, channels=(16, 48, 64, 64, 48),
                 hidden=256, dropout=0.5, rng=None):
        rng = get_rng(rng)
        C, H, W = chw("AlexNet", input_shape)
        if len(channels) != 5:
            raise ValueError(f"AlexNet: channels must be 5 counts (one per convolution), got "
                             f"{channels!r}")
        c1, c2, c3, c4, c5 = (positive_int("AlexNet", "channels entry", c) for c in channels)
        hidden = positive_int("AlexNet", "hidden", hidden)
        num_classes = positive_int("AlexNet", "num_classes", num_classes)
        hw = (H, W)

        def pool():
            nonlocal hw
            hw = conv_output_hw("AlexNet", hw, (3, 3), (2, 2), (1, 1))
            return L.MaxPool2D(3, stride=2, pad=1)

        layers = [L.Conv2D(C, c1, 5, pad=2, rng=rng), L.ReLU(), pool(),
                  L.Conv2D(c1, c2, 5, pad=2, rng=rng), L.ReLU(), pool(),
                  L.Conv2D(c2, c3, 3, pad=1, rng=rng), L.ReLU(),
                  L.Conv2D(c3, c4, 3, pad=1, rng=rng), L.ReLU(),
                  L.Conv2D(c4, c5, 3, pad=1, rng=rng), L.ReLU(), pool(),
                  L.Flatten()]
        layers += [L.Affine(c5 * hw[0] * hw[1], hidden, rng=rng), L.ReLU(), L.Dropout(dropout),
                   L.Affine(hidden, hidden, rng=rng), L.ReLU(), L.Dropout(dropout),
                   L.Affine(hidden, num_classes, rng=rng)]
        super().__init__(layers, loss=L.SoftmaxCrossEntropy(), input_shape=(C, H, W))
