"""Layers, one module per family; every class follows ``cdl.layers.base.Layer``."""
from cdl.layers.activation import LeakyReLU, ReLU, Sigmoid, Softmax, Step, Tanh
from cdl.layers.base import Layer
from cdl.layers.binary import Binarize, BinaryAffine, BinaryConv2D
from cdl.layers.blocks import Chain, Concat, Residual
from cdl.layers.conv import Conv2D
from cdl.layers.dense import Affine, Flatten
from cdl.layers.dropout import DropConnect, Dropout, GaussianNoise
from cdl.layers.loss import Loss, MeanSquaredError, SigmoidCrossEntropy, SoftmaxCrossEntropy
from cdl.layers.norm import BatchNorm
from cdl.layers.pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D

__all__ = [
    "Layer", "Loss",
    "Affine", "Flatten", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Step", "Softmax",
    "SoftmaxCrossEntropy", "MeanSquaredError", "SigmoidCrossEntropy",
    "Chain", "Residual", "Concat",
    "BatchNorm", "Dropout", "DropConnect", "GaussianNoise",
    "Binarize", "BinaryAffine", "BinaryConv2D",
]
