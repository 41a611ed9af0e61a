import numpy as np
import pytest

import cdl
from cdl import layers as L


def test_residual_identity_passes_gradient_straight_through(rng):
    zero = L.Conv2D(2, 2, 3, pad=1, init="zeros")
    block = L.Residual(zero)
    x = rng.standard_normal((2, 2, 4, 4))
    np.testing.assert_array_equal(block.forward(x), x)
    dout = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(block.backward(dout), dout)  # dF/dx = 0, skip adds 1


def test_flat_names_of_nested_blocks_and_roundtrip(tmp_path, rng):
    net = cdl.Sequential([
        L.Conv2D(1, 4, 3, pad=1, rng=0),
        L.Residual(L.Conv2D(4, 4, 3, pad=1, rng=1), L.ReLU(), shortcut=L.Conv2D(4, 4, 1, rng=2)),
        L.Concat(L.Conv2D(4, 2, 1, rng=3), [L.MaxPool2D(3, stride=1, pad=1), L.Conv2D(4, 2, 1, rng=4)]),
        L.GlobalAvgPool2D(), L.Affine(4, 3, rng=5)], loss=L.SoftmaxCrossEntropy())
    assert list(net.params) == ["0.W", "0.b", "1.0.W", "1.0.b", "1.2.W", "1.2.b",
                                "2.0.W", "2.0.b", "2.1.1.W", "2.1.1.b", "4.W", "4.b"]
    x = rng.standard_normal((2, 1, 5, 5)).astype(np.float32)
    net.loss(x, np.array([0, 2]))
    net.backward()
    assert all(np.abs(g).sum() > 0 for g in net.grads.values())
    net.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(cdl.load(tmp_path / "m.npz").predict(x), net.predict(x))


def test_mismatched_paths_are_a_clear_error(rng):
    block = L.Residual(L.Conv2D(2, 3, 3, pad=1))
    with pytest.raises(ValueError, match="projection shortcut"):
        block.forward(rng.standard_normal((1, 2, 4, 4)))
    cat = L.Concat(L.Conv2D(2, 1, 1), L.Conv2D(2, 1, 3))
    with pytest.raises(ValueError, match="differ in more than the channel axis"):
        cat.forward(rng.standard_normal((1, 2, 4, 4)))


def test_frozen_block_hides_its_children():
    net = cdl.Sequential([L.Residual(L.Affine(3, 3)), L.Affine(3, 2)])
    net.layers[0].trainable = False
    assert list(net.params) == ["1.W", "1.b"]


BLOCKS = {
    "residual": lambda: L.Residual(L.Tanh(), L.LeakyReLU(0.1)),
    "projection": lambda: L.Residual(L.Tanh(), shortcut=L.Sigmoid()),
    "concat": lambda: L.Concat(L.Tanh(), [L.Sigmoid(), L.LeakyReLU(0.2)], L.Softmax()),
    "one-branch": lambda: L.Concat([L.Tanh(), L.Sigmoid()]),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "concat" else n
                                  for n in BLOCKS])  # concat: about a second in the simulator
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_on_the_device_match_the_cpu(device, name, dtype):
    from ..conftest import host, on
    r = np.random.default_rng(2)
    x = r.standard_normal((2, 2, 3)).astype(dtype)
    cpu, dev = BLOCKS[name](), BLOCKS[name]()
    y = cpu.forward(x)
    d = r.standard_normal(y.shape).astype(dtype)
    dx = cpu.backward(d)
    yd = dev.forward(on(device, x))
    dd = on(device, d.copy())
    dxd = dev.backward(dd)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    assert host(yd).dtype == host(dxd).dtype == dtype
    np.testing.assert_allclose(host(yd), y, **tol)
    np.testing.assert_allclose(host(dxd), dx, **tol)
    np.testing.assert_array_equal(host(dd), d)  # dout untouched


def test_blocks_never_write_into_dout(rng):
    x = rng.standard_normal((2, 3))
    for block in (L.Residual(L.Flatten()), L.Concat(L.Flatten(), L.Flatten(), L.Flatten())):
        y = block.forward(x)
        dout = rng.standard_normal(y.shape)
        keep = dout.copy()
        block.backward(dout)
        np.testing.assert_array_equal(dout, keep)


def test_concat_sums_branch_gradients_in_the_wider_dtype(rng):
    # a float64 branch after a float32 one: the sum is float64, as NumPy's + gives
    cat = L.Concat(L.Flatten(), L.Affine(3, 2, rng=0).astype(np.float64))
    x = rng.standard_normal((2, 3)).astype(np.float32)
    y = cat.forward(x)
    assert y.shape == (2, 5) and y.dtype == np.float64
    dx = cat.backward(np.ones((2, 5)))
    assert dx.dtype == np.float64
    want = 1 + cat.children()[1].params["W"].sum(axis=1)
    np.testing.assert_allclose(dx, np.broadcast_to(want, (2, 3)), rtol=1e-6)
