"""cdl.predictor: predict in chunks, predict_proba and accuracy, shared by every model kind."""
import numpy as np
import pytest

from cdl.predictor import Predictor, count_correct, in_batches, labels


class Fixed(Predictor):
    """A model whose predict returns fixed scores, counting the chunks it was asked for."""

    def __init__(self, scores, outputs="softmax"):
        self.scores, self.outputs, self.calls = scores, outputs, []

    def predict(self, x, batch_size=None):
        def run(chunk):
            self.calls.append(len(chunk))
            return self.scores[chunk]
        return in_batches(run, x, batch_size)


def test_in_batches_concatenates_the_chunks_in_order():
    model = Fixed(np.arange(14.0).reshape(7, 2))
    idx = np.arange(7)
    np.testing.assert_array_equal(model.predict(idx, 3), model.scores)
    assert model.calls == [3, 3, 1]
    model.calls.clear()
    model.predict(idx, None)
    model.predict(idx, 7)
    assert model.calls == [7, 7]


def test_labels_from_integers_or_one_hot():
    np.testing.assert_array_equal(labels([2, 0, 1]), [2, 0, 1])
    np.testing.assert_array_equal(labels(np.eye(3)[[2, 0, 1]]), [2, 0, 1])


def test_accuracy_counts_arg_max_hits_and_refuses_a_label_count_mismatch():
    model = Fixed(np.array([[0.0, 1.0], [3.0, 1.0], [0.0, 2.0], [5.0, 4.0]]))
    idx = np.arange(4)
    assert model.accuracy(idx, [1, 0, 0, 1], batch_size=3) == 0.5
    assert model.accuracy(idx, np.eye(2)[[1, 0, 1, 0]]) == 1.0
    with pytest.raises(ValueError, match=r"Fixed\.accuracy: 3 labels for 4 samples"):
        model.accuracy(idx, [1, 0, 0])


def test_predict_proba_follows_the_outputs():
    z = np.array([[1000.0, -1000.0, 0.0], [0.5, 0.5, 0.5]], np.float32)
    idx = np.arange(2)
    p = Fixed(z).predict_proba(idx)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6, atol=1e-30)
    s = Fixed(z, "sigmoid").predict_proba(idx)
    with np.errstate(over="ignore"):  # the oracle: exp(1000) is inf, and 1 / inf is 0
        want = 1 / (1 + np.exp(-z.astype(np.float64)))
    np.testing.assert_allclose(s, want, rtol=1e-6)
    np.testing.assert_array_equal(Fixed(z, "probabilities").predict_proba(idx), z)
    with pytest.raises(ValueError, match=r"Fixed\.predict_proba: a regression model"):
        Fixed(z, "regression").predict_proba(idx)


def test_count_correct_counts_arg_max_hits_for_labels_and_one_hot():
    y = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0]])
    assert count_correct("f", y, np.array([1, 1, 1])) == 2.0
    assert count_correct("f", y, np.eye(2)[[1, 0, 0]]) == 2.0
    with pytest.raises(ValueError, match=r"f: 2 labels for 3 samples"):
        count_correct("f", y, np.array([1, 0]))
    with pytest.raises(ValueError, match=r"f: labels outside 0\.\.1"):
        count_correct("f", y, np.array([0, 1, 2]))
