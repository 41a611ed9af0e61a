"""Data sets (the digits shipped with cdl, Fashion-MNIST from IDX files) and augmentation."""
from cdl.data import augment
from cdl.data.digits import load_digits
from cdl.data.idx import fashion_mnist_available, load_fashion_mnist, read_idx

__all__ = ["augment", "load_digits", "load_fashion_mnist", "fashion_mnist_available", "read_idx"]
