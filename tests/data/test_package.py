"""cdl.data as a package: the loaders of DESIGN.md by name, reachable from `import cdl`."""
import numpy as np

import cdl


def test_exported_names():
    from cdl import data
    assert set(data.__all__) == {
        "augment", "load_digits", "load_fashion_mnist", "load_mnist", "load_cifar10",
        "fashion_mnist_available", "mnist_available", "cifar10_available", "read_idx",
        "read_cifar_batch", "DataLoader", "channel_stats"}
    for name in data.__all__:
        assert getattr(data, name) is not None, name
    assert cdl.data is data


def test_load_digits_through_the_package_is_the_design_contract():
    (x, t), (xt, tt) = cdl.data.load_digits()
    for images, labels in ((x, t), (xt, tt)):
        assert images.dtype == np.float32 and images.ndim == 4 and images.shape[1:] == (1, 8, 8)
        assert 0 <= images.min() and images.max() <= 1
        assert labels.dtype.kind in "iu" and len(labels) == len(images)
        assert set(np.unique(labels)) == set(range(10))
