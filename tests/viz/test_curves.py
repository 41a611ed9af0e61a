"""cdl.viz.curves: learning curves, curves, optimizer paths and trials render to PNGs of
their size."""

import numpy as np
import pytest

from cdl import viz

from ._helpers import check_png

HISTORY = {"epoch": [1, 2, 3], "loss": [1.2, 0.6, 0.4], "train_acc": [0.6, 0.8, 0.9],
           "val_loss": [1.0, 0.7, 0.6], "val_acc": [0.55, 0.75, 0.8], "time": [0.1] * 3}


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_learning_curves(tmp_path):
    pytest.importorskip("matplotlib")
    fig = viz.learning_curves(HISTORY, tmp_path / "lc.png")
    check_png(fig, tmp_path / "lc.png")
    assert len(fig.axes) == 2
    assert "val acc 0.8000" in fig._suptitle.get_text()
    loss_ax = fig.axes[0]
    assert [line.get_label() for line in loss_ax.lines] == ["train", "validation"]


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_learning_curves_of_several_runs_and_partial_histories(tmp_path):
    pytest.importorskip("matplotlib")
    runs = {f"run {i}": HISTORY for i in range(5)}
    check_png(viz.learning_curves(runs, tmp_path / "a.png"), tmp_path / "a.png")
    fig = viz.learning_curves({"loss": [3.0, 2.0]}, tmp_path / "b.png")  # loss only
    check_png(fig, tmp_path / "b.png")
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="none of 'loss'"):
        viz.learning_curves({"epoch": [1]})


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_curves_one_panel_and_grid(tmp_path):
    pytest.importorskip("matplotlib")
    fig = viz.curves({"a": np.linspace(2, 1, 50), "b": (np.arange(50) * 2, np.ones(50))},
                     tmp_path / "c.png", xlabel="iteration", ylabel="loss", smooth=5)
    check_png(fig, tmp_path / "c.png")
    grid = {f"p{i}": {"x": [1, 2, 3], "y": [3, 2, 1]} for i in range(4)}
    fig = viz.curves(grid, tmp_path / "g.png", xlabel=["a", "b", "c", "d"], max_cols=2)
    check_png(fig, tmp_path / "g.png")
    assert [ax.get_xlabel() for ax in fig.axes[:4]] == ["a", "b", "c", "d"]


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_optimizer_paths(tmp_path):
    pytest.importorskip("matplotlib")
    paths = {"SGD": np.array([[-7.0, 2.0], [-6.0, -1.5], [-5.0, 1.0], [0, 0]]),
             "Adam": np.array([[-7.0, 2.0], [-5.0, 0.5], [0, 0]])}
    fig = viz.optimizer_paths(lambda x, y: x ** 2 / 20 + y ** 2, paths, tmp_path / "p.png",
                              minimum=(0, 0))
    check_png(fig, tmp_path / "p.png")
    assert fig.axes[0].get_title() == "SGD: 3 steps"


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_trials(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    trials = [{"params": {"lr": float(10 ** rng.uniform(-4, -1)), "opt": ["sgd", "adam"][i % 2]},
               "score": float(rng.uniform())} for i in range(12)]
    trials.append({"params": {"lr": 0.1, "opt": "sgd"}, "score": None})  # pruned
    trials.sort(key=lambda tr: -np.inf if tr["score"] is None else tr["score"], reverse=True)
    fig = viz.trials(trials, tmp_path / "t.png")
    check_png(fig, tmp_path / "t.png")
    title = fig._suptitle.get_text()
    assert title.startswith("13 trials (1 failed); best score "
                            f"{trials[0]['score']:.4g}")
    assert fig.axes[0].get_xscale() == "log"
    # cdl.tune's states: a pruned trial is drawn at its last report, counted apart
    trials[1] = dict(trials[1], score=None, state="pruned", reports=[(1, 0.2), (2, 0.3)])
    fig = viz.trials(trials, tmp_path / "p.png")
    assert fig._suptitle.get_text().startswith("13 trials (1 pruned, 1 failed); best score")


