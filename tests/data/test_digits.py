import numpy as np

from cdl.data import load_digits


def test_digits_split_is_fixed_stratified_and_disjoint():
    (x, t), (xt, tt) = load_digits()
    assert x.shape[1:] == (1, 8, 8) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert len(x) + len(xt) == 1797 and abs(len(xt) - 360) <= 5
    assert np.all(np.abs(np.bincount(tt) - 36) <= 1)
    (x2, _), (xt2, _) = load_digits()
    np.testing.assert_array_equal(xt, xt2)
    rows = {r.tobytes() for r in x.reshape(len(x), -1)}
    assert sum(r.tobytes() in rows for r in xt.reshape(len(xt), -1)) < 5  # only true duplicates


def test_flatten_and_one_hot():
    (x, t), _ = load_digits(flatten=True, one_hot_label=True)
    assert x.shape[1] == 64 and t.shape[1] == 10 and np.all(t.sum(1) == 1)
