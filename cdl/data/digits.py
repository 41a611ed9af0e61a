"""The 8x8 handwritten digits that ship inside cdl (no download).

1,797 images of 8x8 pixels with values 0..16, ten classes: the UCI "Optical
Recognition of Handwritten Digits" test set (E. Alpaydin, C. Kaynak, 1998;
CC BY 4.0), the same data as scikit-learn's ``load_digits``. Stored in
``digits.npz`` as uint8 and loaded with ``allow_pickle=False``.
"""
import os

import numpy as np

_PATH = os.path.join(os.path.dirname(__file__), "digits.npz")


def load_digits(normalize=True, flatten=False, one_hot_label=False, test_size=360, seed=0):
    """((x_train, t_train), (x_test, t_test)), as the book's ``load_mnist`` returns.

    x is float32 (N, 1, 8, 8), or (N, 64) with flatten; scaled to [0, 1] with
    normalize. t is int64 labels, or (N, 10) float32 with one_hot_label. The
    held-out split is stratified and fixed by ``seed`` (not by training seeds),
    about ``test_size`` images (each class's share rounded: 359 by default).
    """
    with np.load(_PATH, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    if not 10 <= test_size <= len(labels) - 10:
        raise ValueError(f"load_digits: test_size must be in [10, {len(labels) - 10}], "
                         f"got {test_size}")
    rng = np.random.default_rng(seed)
    per_class = np.bincount(labels)
    test = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        take = int(round(test_size * per_class[c] / len(labels)))
        test.append(members[:take])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    x = images.astype(np.float32)
    if normalize:
        x /= 16.0
    x = x.reshape(len(x), 64) if flatten else x.reshape(len(x), 1, 8, 8)
    t = np.eye(10, dtype=np.float32)[labels] if one_hot_label else labels
    return (x[train], t[train]), (x[test], t[test])
