"""cdl.viz as a package: its names, no matplotlib on import, and `cdl train --plot`, which
draws its figures."""
import subprocess
import sys

import pytest

import cdl
from cdl import viz

from ._helpers import png_size


@pytest.mark.slow  # renders PNGs (or starts Python): about a second each
def test_import_cdl_never_imports_matplotlib():
    code = ("import sys, cdl, cdl.viz, cdl.cli; cdl.data; cdl.models; "
            "print(any(m.split('.')[0] == 'matplotlib' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
    assert "viz" in cdl.__all__ and cdl.viz is viz


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


def test_exported_names():
    assert set(viz.__all__) == {"learning_curves", "curves", "confusion_matrix",
                                "confusion_counts", "misclassified", "filters",
                                "activation_histograms", "optimizer_paths", "trials",
                                "first_weights", "available", "DPI", "HINT"}
    for name in viz.__all__:
        assert getattr(viz, name) is not None
    assert viz.HINT.format("x") == 'cdl.viz.x needs matplotlib: pip install "cdl[plot]"'
