"""Ready-made architectures, built from cdl layers. Each builder returns a Sequential.

Builders take the input shape (C, H, W), the number of classes and an
optional ``rng`` (seed or Generator) for the initial weights, and record the
input shape for ``summary()``. ``MODELS`` maps the names ``cdl train
--model`` accepts to builders; ``default_input_shape(name)`` is the shape a
builder is laid out for by default (every one also takes the 8x8 digits).
"""
import inspect

from cdl.models.binary import BinaryConvNet, BinaryMLP
from cdl.models.classic import VGG, AlexNet, vgg11, vgg16
from cdl.models.convnets import DeepConvNet, ResNet, SimpleConvNet, resnet20, resnet32, resnet56
from cdl.models.inception import GoogLeNet, Inception
from cdl.models.small import mlp, small_cnn

MODELS = {"cnn": small_cnn, "mlp": mlp, "binary_mlp": BinaryMLP, "binary_cnn": BinaryConvNet}
MODELS.update({"simple_cnn": SimpleConvNet, "deep_cnn": DeepConvNet, "resnet": ResNet})
MODELS.update({"resnet20": resnet20, "resnet32": resnet32, "resnet56": resnet56,
               "vgg11": vgg11, "vgg16": vgg16, "alexnet": AlexNet, "googlenet": GoogLeNet})


def default_input_shape(name):
    """The input_shape default of the builder MODELS[name], e.g. (3, 32, 32) for "vgg16"."""
    return tuple(inspect.signature(MODELS[name]).parameters["input_shape"].default)


__all__ = ["MODELS", "default_input_shape", "small_cnn", "mlp", "BinaryMLP", "BinaryConvNet",
           "SimpleConvNet", "DeepConvNet", "ResNet", "resnet20", "resnet32", "resnet56",
           "VGG", "vgg11", "vgg16", "AlexNet", "GoogLeNet", "Inception"]
