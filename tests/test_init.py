import numpy as np
import pytest

from cdl import init
from cdl import layers as L


@pytest.mark.parametrize("name, shape, std", [
    ("he_normal", (400, 300), np.sqrt(2 / 400)),
    ("xavier_normal", (400, 300), np.sqrt(2 / 700)),
    ("xavier_book", (400, 300), np.sqrt(1 / 400)),
    ("he_normal", (64, 32, 3, 3), np.sqrt(2 / (32 * 9))),
    ("xavier_normal", (64, 32, 3, 3), np.sqrt(2 / (32 * 9 + 64 * 9))),
])
def test_normal_stds(name, shape, std):
    w = init.get(name)(shape, rng=0)
    assert abs(w.mean()) < 4 * std / np.sqrt(w.size)
    assert abs(w.std() / std - 1) < 0.03


@pytest.mark.parametrize("name, limit", [
    ("uniform", np.sqrt(1 / 500)), ("xavier_uniform", np.sqrt(6 / 700)), ("he_uniform", np.sqrt(6 / 500)),
])
def test_uniform_bounds(name, limit):
    w = init.get(name)((500, 200), rng=1)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.98 * limit
    assert abs(w.std() / (limit / np.sqrt(3)) - 1) < 0.03


def test_normal_and_constant():
    w = init.normal(std=0.01)((300, 300), rng=2)
    assert abs(w.std() - 0.01) < 3e-4
    c = init.constant(0.5)((3, 4))
    assert (c == 0.5).all() and c.dtype == np.float32


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (8, 4, 3, 3)])
def test_orthogonal(shape):
    w = init.orthogonal(gain=2.0)(shape, rng=3, dtype=np.float64)
    m = w.reshape(shape[0], -1) if len(shape) == 4 else w
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-10)


def test_sparse_counts_nonzeros_per_unit():
    w = init.sparse(k=5)((40, 7), rng=4)
    assert ((w != 0).sum(axis=0) == 5).all()
    wc = init.sparse(k=3)((6, 2, 3, 3), rng=4)
    assert ((wc.reshape(6, -1) != 0).sum(axis=1) == 3).all()


def test_seeded_and_usable_from_layers():
    a = L.Affine(5, 3, init="xavier_uniform", rng=7).params["W"]
    b = L.Affine(5, 3, init="xavier_uniform", rng=7).params["W"]
    np.testing.assert_array_equal(a, b)
    c = L.Conv2D(2, 3, 3, init=init.normal(std=1.0), rng=7).params["W"]
    assert c.shape == (3, 2, 3, 3) and c.dtype == np.float32
    assert (L.Affine(4, 4, init="constant").params["W"] == 0).all()


def test_unknown_initializer():
    with pytest.raises(ValueError, match="unknown initializer"):
        L.Affine(3, 3, init="magic")
