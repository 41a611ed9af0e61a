import numpy as np
import pytest

from cdl import layers as L
from cdl.gradcheck import numerical_gradient


def _ce_reference(y, labels):
    p = np.exp(y - y.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return -np.log(p[np.arange(len(y)), labels]).mean()


def test_cross_entropy_labels_and_one_hot_agree(rng):
    y = rng.standard_normal((5, 4))
    t = rng.integers(0, 4, 5)
    a, b = L.SoftmaxCrossEntropy(), L.SoftmaxCrossEntropy()
    la, lb = a.forward(y, t), b.forward(y, np.eye(4)[t])
    assert np.isclose(la, _ce_reference(y, t)) and np.isclose(la, lb)
    np.testing.assert_allclose(a.backward(), b.backward())


def test_cross_entropy_is_stable_for_huge_scores():
    loss = L.SoftmaxCrossEntropy()
    value = loss.forward(np.array([[1000.0, -1000.0], [0.0, 1e4]]), np.array([0, 1]))
    assert value == 0.0
    assert np.isclose(L.SoftmaxCrossEntropy().forward(np.array([[-1e4, 1e4]]), np.array([0])), 2e4)


@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_gradient(rng, soft):
    y = rng.standard_normal((3, 5))
    t = rng.dirichlet(np.ones(5), 3) if soft else rng.integers(0, 5, 3)
    loss = L.SoftmaxCrossEntropy()
    loss.forward(y, t)
    num = numerical_gradient(lambda: L.SoftmaxCrossEntropy().forward(y, t), y)
    np.testing.assert_allclose(loss.backward(), num, rtol=1e-5, atol=1e-8)


def test_mse_value_and_gradient(rng):
    y, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss = L.MeanSquaredError()
    assert np.isclose(loss.forward(y, t), 0.5 * ((y - t) ** 2).sum() / 4)
    num = numerical_gradient(lambda: L.MeanSquaredError().forward(y, t), y)
    np.testing.assert_allclose(loss.backward(), num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("y, t, match", [
    (np.zeros((3, 4)), np.array([0, 1]), "2 labels for 3 samples"),
    (np.zeros((3, 4)), np.array([0, 1, 4]), r"labels must be in \[0, 4\)"),
    (np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), "must be integers"),
    (np.zeros((3, 4)), np.zeros((3, 5)), "do not match"),
    (np.zeros((3, 4, 1)), np.array([0, 1, 2]), "2-D"),
])
def test_cross_entropy_bad_targets(y, t, match):
    with pytest.raises(ValueError, match=match):
        L.SoftmaxCrossEntropy().forward(y, t)


def test_mse_shape_mismatch():
    with pytest.raises(ValueError, match="do not match"):
        L.MeanSquaredError().forward(np.zeros((2, 3)), np.zeros((2, 4)))
