import numpy as np
import pytest

import cdl
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


def test_the_course_initializers_are_all_named():
    assert {"constant", "normal", "uniform", "xavier_normal", "xavier_book", "xavier_uniform",
            "he_normal", "he_uniform", "orthogonal", "sparse"} <= set(init.names())


@pytest.mark.parametrize("name", ["uniform", "xavier_uniform", "he_uniform", "he_normal",
                                  "xavier_normal", "xavier_book", "normal"])
def test_zero_mean_and_dtype(name):
    w = init.get(name)((300, 200), rng=5, dtype=np.float64)
    assert w.dtype == np.float64 and w.shape == (300, 200)
    assert abs(w.mean()) < 4 * w.std() / np.sqrt(w.size)


def test_conv_uniform_bounds_use_conv_fans():
    w = init.he_uniform()((16, 8, 3, 3), rng=6)
    limit = np.sqrt(6 / (8 * 9))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    w = init.xavier_uniform()((16, 8, 3, 3), rng=6)
    assert np.abs(w).max() <= np.sqrt(6 / (8 * 9 + 16 * 9))


def test_sparse_values_are_normal_with_std():
    w = init.sparse(k=10, std=0.5)((200, 300), rng=7)
    nz = w[w != 0]
    assert nz.size == 10 * 300
    assert abs(nz.std() / 0.5 - 1) < 0.05


def test_seeded_by_rng_and_by_cdl_seed():
    for name in init.names():
        a = init.get(name)((20, 30), rng=11)
        b = init.get(name)((20, 30), rng=np.random.default_rng(11))
        np.testing.assert_array_equal(a, b)
    cdl.seed(3)
    a = L.Affine(20, 4, init="sparse").params["W"]
    cdl.seed(3)
    b = L.Affine(20, 4, init="sparse").params["W"]
    np.testing.assert_array_equal(a, b)


def test_class_instance_or_callable():
    by_class = L.Affine(5, 3, init=init.he_uniform, rng=1).params["W"]
    by_instance = L.Affine(5, 3, init=init.he_uniform(), rng=1).params["W"]
    np.testing.assert_array_equal(by_class, by_instance)
    fixed = L.Conv2D(1, 2, 3, init=lambda shape, rng, dtype: np.full(shape, 0.25, dtype)).params["W"]
    assert (fixed == 0.25).all() and fixed.dtype == np.float32


def _two_layer(init_name, rng):
    return cdl.Sequential([L.Affine(4, 6, init=init_name, rng=rng), L.Sigmoid(),
                           L.Affine(6, 3, init=init_name, rng=rng)],
                          loss=L.SoftmaxCrossEntropy())


@pytest.mark.parametrize("init_name, symmetric", [(init.constant(0.3), True), ("he_normal", False)])
def test_constant_init_has_the_symmetry_problem(init_name, symmetric):
    """With equal weights every hidden unit gets the same gradient: they never differ."""
    rng = np.random.default_rng(8)
    net = _two_layer(init_name, rng).astype(np.float64)
    x, t = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    opt = cdl.optim.SGD(lr=0.5)
    for _ in range(20):
        net.loss(x, t)
        net.backward()
        opt.update(net.params, net.grads)
    W1 = net.params["0.W"]
    same = np.allclose(W1, W1[:, :1], rtol=0, atol=1e-12)
    assert same == symmetric
    if symmetric:
        assert not np.allclose(W1, 0.3)  # it did train, just not apart


@pytest.mark.parametrize("make, match", [
    (lambda: init.normal(std=0), "std"), (lambda: init.normal(std=float("nan")), "std"),
    (lambda: init.constant(float("inf")), "value"), (lambda: init.sparse(k=0), "k"),
    (lambda: init.sparse(k=2.5), "k"), (lambda: init.orthogonal(gain=0), "gain"),
    (lambda: init.sparse(k=5)((3, 4)), "exceeds the fan-in"),
    (lambda: init.orthogonal()((5,)), "2-D or 4-D"),
    (lambda: init.he_normal()((5,)), "fans"),
    (lambda: init.get(3), "name or a callable"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_rng_scope_is_per_thread_and_restored():
    import threading
    from cdl import init
    outer = init.get_rng()
    mine = np.random.default_rng(5)
    seen = {}

    def other():
        seen["other"] = init.get_rng()
    with init.rng_scope(mine):
        assert init.get_rng() is mine
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen["other"] is outer  # another thread keeps the package generator
    assert init.get_rng() is outer
    with init.rng_scope(None):
        assert init.get_rng() is outer


def test_subpackages_are_attributes_of_cdl():
    import subprocess
    import sys
    code = ("import cdl; cdl.data.load_digits; cdl.models.ResNet; cdl.binary.pack_bits; "
            "cdl.optim.Adam; cdl.layers.Conv2D; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
