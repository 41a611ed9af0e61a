"""Data sets (the digits shipped with cdl; MNIST, Fashion-MNIST and CIFAR-10 from their
files), mini-batch loading (DataLoader, memory-mapped data too) and augmentation."""
from cdl.data import augment
from cdl.data.cifar import cifar10_available, load_cifar10, read_cifar_batch
from cdl.data.digits import load_digits
from cdl.data.idx import (fashion_mnist_available, load_fashion_mnist, load_mnist,
                          mnist_available, read_idx)
from cdl.data.loader import DataLoader, channel_stats

__all__ = ["augment", "load_digits", "load_fashion_mnist", "load_mnist", "load_cifar10",
           "fashion_mnist_available", "mnist_available", "cifar10_available", "read_idx",
           "read_cifar_batch", "DataLoader", "channel_stats"]
