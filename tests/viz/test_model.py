"""cdl.viz.model: figures of a model: confusion matrix, misclassified samples, filters,
activation histograms."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl import viz

from ._helpers import check_png


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_confusion_matrix_title_agrees_with_accuracy(tmp_path, digits, cnn):
    pytest.importorskip("matplotlib")
    _, _, xt, tt = digits
    fig = viz.confusion_matrix(cnn, xt, tt, tmp_path / "cm.png")
    check_png(fig, tmp_path / "cm.png")
    counts = viz.confusion_counts(cnn, xt, tt, num_classes=10)
    assert counts.sum() == len(tt) and counts.shape == (10, 10)
    correct = int(np.trace(counts))
    assert correct == round(cnn.accuracy(xt, tt) * len(tt))
    assert fig.axes[0].get_title().startswith(f"{correct:,} of {len(tt):,} correct")


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_misclassified(tmp_path, digits, cnn):
    pytest.importorskip("matplotlib")
    _, _, xt, tt = digits
    names = [f"digit {i}" for i in range(10)]
    fig = viz.misclassified(cnn, xt, tt, tmp_path / "m.png", labels=names, max_images=10)
    check_png(fig, tmp_path / "m.png")
    wrong = int((cnn.predict(xt).argmax(1) != tt).sum())
    assert fig._suptitle.get_text().startswith(f"{wrong:,} of {len(tt):,} misclassified")
    # flat samples of a square size are shown as images too
    mlp = cdl.Sequential([L.Affine(64, 10)], loss=L.SoftmaxCrossEntropy())
    check_png(viz.misclassified(mlp, xt.reshape(len(xt), -1), tt, tmp_path / "f.png"),
              tmp_path / "f.png")


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_filters_before_and_after(tmp_path, cnn):
    pytest.importorskip("matplotlib")
    w0 = cnn.layers[0].params["W"].copy()
    fig = viz.filters(cnn, tmp_path / "f.png", before=w0)
    check_png(fig, tmp_path / "f.png")
    assert [ax.get_title() for ax in fig.axes] == ["before training", "after training"]
    check_png(viz.filters(cnn.layers[0], tmp_path / "one.png"), tmp_path / "one.png")
    rgb = L.Conv2D(3, 4, 5)
    check_png(viz.filters(rgb, tmp_path / "rgb.png"), tmp_path / "rgb.png")
    affine = L.Affine(64, 100)  # columns shown as 8x8 images, 64 of 100
    fig = viz.filters(affine, tmp_path / "a.png")
    check_png(fig, tmp_path / "a.png")
    assert "64 of 100" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="before has shape"):
        viz.filters(cnn, before=np.zeros((2, 1, 3, 3)))


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_activation_histograms(tmp_path, digits):
    pytest.importorskip("matplotlib")
    x = digits[0].reshape(200, -1)
    nets = {name: cdl.Sequential([L.Affine(64, 20, init=init), L.ReLU(),
                                  L.Affine(20, 20, init=init), L.Sigmoid()])
            for name, init in (("He", "he_normal"), ("small", cdl.init.normal(0.01)))}
    fig = viz.activation_histograms(nets, x, tmp_path / "h.png")
    check_png(fig, tmp_path / "h.png")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["layer 1 (ReLU)", "layer 2 (Sigmoid)"]
    one = viz.activation_histograms(nets["He"], x, tmp_path / "one.png", range=(0, 1))
    check_png(one, tmp_path / "one.png")


def test_confusion_counts_without_matplotlib_by_hand():
    """A model whose scores are its input (one-hot rows): counts checked by hand."""
    class ArgmaxOfInput:
        def predict(self, x, batch_size):
            return x

    x = np.eye(3, dtype=np.float32)[[0, 1, 2, 2, 1]]  # predicts 0, 1, 2, 2, 1
    t = np.array([0, 1, 1, 2, 0])
    counts = viz.confusion_counts(ArgmaxOfInput(), x, t, batch_size=2)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert viz.confusion_counts(ArgmaxOfInput(), x, t, num_classes=4).shape == (4, 4)


def test_first_weights_is_a_copy_of_the_first_weighted_layer(cnn):
    w = viz.first_weights(cnn)
    np.testing.assert_array_equal(w, cnn.layers[0].params["W"])
    w[...] = 0
    assert np.any(cnn.layers[0].params["W"] != 0)
