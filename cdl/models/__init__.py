"""Ready-made architectures, built from cdl layers. Each builder returns a Sequential.

Builders take the input shape (C, H, W), the number of classes and an
optional ``rng`` (seed or Generator) for the initial weights. ``MODELS``
maps the names ``cdl train --model`` accepts to builders.
"""
from cdl.models.binary import BinaryConvNet, BinaryMLP
from cdl.models.convnets import DeepConvNet, ResNet, SimpleConvNet
from cdl.models.small import mlp, small_cnn

MODELS = {"cnn": small_cnn, "mlp": mlp, "binary_mlp": BinaryMLP, "binary_cnn": BinaryConvNet}
MODELS.update({"simple_cnn": SimpleConvNet, "deep_cnn": DeepConvNet, "resnet": ResNet})

__all__ = ["MODELS", "small_cnn", "mlp", "BinaryMLP", "BinaryConvNet",
           "SimpleConvNet", "DeepConvNet", "ResNet"]
