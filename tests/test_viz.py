"""cdl.viz: every figure renders to a PNG of its size; without matplotlib, one install hint."""
import struct
import subprocess
import sys

import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl import viz

ENTRY_POINTS = ["learning_curves", "curves", "confusion_matrix", "misclassified", "filters",
                "activation_histograms", "optimizer_paths", "trials"]


def png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def check_png(fig, path):
    from matplotlib.figure import Figure
    assert isinstance(fig, Figure)
    assert path.stat().st_size > 1000
    w, h = fig.get_size_inches() * viz.DPI
    assert png_size(path) == (round(w), round(h))


@pytest.fixture
def digits():
    (x, t), (xt, tt) = cdl.data.load_digits()
    return x[:200], t[:200], xt[:120], tt[:120]


@pytest.fixture
def cnn(rng):
    return cdl.Sequential([L.Conv2D(1, 6, 3, pad=1, rng=rng), L.ReLU(), L.MaxPool2D(2),
                           L.Flatten(), L.Affine(6 * 4 * 4, 10, rng=rng)],
                          loss=L.SoftmaxCrossEntropy(), input_shape=(1, 8, 8))


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


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_without_matplotlib_each_entry_point_says_how_to_install(name, monkeypatch):
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError) as info:
        getattr(viz, name)(*[None] * 3)
    assert str(info.value) == f'cdl.viz.{name} needs matplotlib: pip install "cdl[plot]"'
    assert "\n" not in str(info.value)


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_import_cdl_never_imports_matplotlib():
    code = ("import sys, cdl, cdl.viz, cdl.cli; cdl.data; cdl.models; "
            "print(any(m.split('.')[0] == 'matplotlib' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
    assert "viz" in cdl.__all__ and cdl.viz is viz


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_figures_leave_pyplot_alone(tmp_path):
    """No pyplot state: the user's backend and figure list are untouched."""
    pytest.importorskip("matplotlib")
    code = ("import sys, matplotlib; matplotlib.use('svg'); from cdl import viz; "
            "viz.learning_curves({'loss': [1, 0.5]}, sys.argv[1]); "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.png")],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["svg", "False"]
    assert png_size(tmp_path / "x.png")[0] > 0


@pytest.mark.slow
def test_cdl_train_plot_writes_the_three_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from cdl.cli import main
    folder = tmp_path / "figs"  # made by --plot
    assert main(["train", "--epochs", "1", "--model", "mlp", "--plot", str(folder)]) == 0
    for name in ("learning_curves.png", "filters.png", "confusion_matrix.png"):
        assert png_size(folder / name)[0] > 100 and (folder / name).stat().st_size > 1000
    assert f"figures in {folder}" in capsys.readouterr().out


def test_cdl_train_plot_without_matplotlib_is_one_line_and_status_2(tmp_path, monkeypatch,
                                                                    capsys):
    from cdl.cli import main
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["train", "--epochs", "1", "--plot", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ('cdl train: error: --plot: cdl.viz.learning_curves needs matplotlib: '
                           'pip install "cdl[plot]"')
    assert not (tmp_path / "f").exists()
