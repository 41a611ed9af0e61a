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


def _bce_reference(y, t):
    p = 1 / (1 + np.exp(-y))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum() / y.shape[0]


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 2)])
def test_sigmoid_cross_entropy_value_and_gradient(rng, shape):
    y = rng.standard_normal(shape) * 2
    t = (rng.random(shape) < 0.5).astype(np.float64)
    t.flat[0] = 0.25  # probabilities are targets too
    loss = L.SigmoidCrossEntropy()
    assert np.isclose(loss.forward(y, t), _bce_reference(y, t))
    num = numerical_gradient(lambda: L.SigmoidCrossEntropy().forward(y, t), y)
    np.testing.assert_allclose(loss.backward(), num, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(loss.backward(3.0), 3 * num, rtol=1e-5, atol=1e-8)


@pytest.mark.slow  # imports torch (seconds)
def test_sigmoid_cross_entropy_matches_torch(rng):
    torch = pytest.importorskip("torch")
    y = rng.standard_normal((6, 4)) * 5
    t = (rng.random((6, 4)) < 0.5).astype(np.float64)
    ty, tt = torch.tensor(y, requires_grad=True), torch.tensor(t)
    want = torch.nn.BCEWithLogitsLoss(reduction="sum")(ty, tt) / 6
    want.backward()
    loss = L.SigmoidCrossEntropy()
    assert np.isclose(loss.forward(y, t), want.item(), rtol=1e-12)
    np.testing.assert_allclose(loss.backward(), ty.grad.numpy(), rtol=1e-12)


def test_sigmoid_cross_entropy_is_stable_for_huge_scores():
    loss = L.SigmoidCrossEntropy()
    y = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=np.float32)
    assert loss.forward(y, np.array([[1, 0], [0, 1]])) == 0.0
    assert np.isclose(L.SigmoidCrossEntropy().forward(y, np.array([[0, 1], [0, 1]])), 1e4)
    np.testing.assert_array_equal(loss.backward(), np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("t, match", [
    (np.zeros((3, 2)), "do not match"),
    (np.array([[0, 1, 2]] * 3), r"in \[0, 1\], got values in \[0, 2\]"),
    (np.array([[0, np.nan, 1]] * 3), "and NaN"),
    (np.array([["a", "b", "c"]] * 3), "must be numbers"),
])
def test_sigmoid_cross_entropy_bad_targets(t, match):
    with pytest.raises(ValueError, match=match):
        L.SigmoidCrossEntropy().forward(np.zeros((3, 3)), t)


def test_losses_backward_before_forward():
    for loss in (L.SoftmaxCrossEntropy(), L.SigmoidCrossEntropy(), L.MeanSquaredError()):
        with pytest.raises(RuntimeError, match="before forward"):
            loss.backward()


def test_backward_scales_by_dout_and_keeps_dtype(rng):
    y = rng.standard_normal((4, 3)).astype(np.float32)
    for loss, t in ((L.SoftmaxCrossEntropy(), np.array([0, 2, 1, 1])),
                    (L.SigmoidCrossEntropy(), np.ones((4, 3))),
                    (L.MeanSquaredError(), np.ones((4, 3)))):
        loss.forward(y, t)
        g1 = loss.backward()
        g2 = loss.backward(2.0)
        assert g1.dtype == g2.dtype == np.float32
        np.testing.assert_allclose(g2, 2 * g1, rtol=1e-6)


def test_model_with_sigmoid_cross_entropy_roundtrips(tmp_path, rng):
    import cdl
    net = cdl.Sequential([L.Affine(3, 2, rng=0)], loss=L.SigmoidCrossEntropy())
    x = rng.standard_normal((4, 3)).astype(np.float32)
    value = net.loss(x, np.array([[0, 1], [1, 1], [0, 0], [1, 0]]))
    net.save(tmp_path / "m.npz")
    back = cdl.load(tmp_path / "m.npz")
    assert isinstance(back.loss_layer, L.SigmoidCrossEntropy)
    assert np.isclose(back.loss(x, np.array([[0, 1], [1, 1], [0, 0], [1, 0]])), value)
