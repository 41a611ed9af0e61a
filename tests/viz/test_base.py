"""cdl.viz._base: figures on an Agg canvas without pyplot, and the one-line install hint
without matplotlib."""
import subprocess
import sys

import pytest

from cdl import viz
from cdl.viz import _base

from ._helpers import ENTRY_POINTS, png_size


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


def test_available_follows_matplotlib(monkeypatch):
    import importlib.util
    assert viz.available() is (importlib.util.find_spec("matplotlib") is not None)
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert viz.available() is False


def test_a_figure_has_its_size_on_an_agg_canvas():
    pytest.importorskip("matplotlib")
    fig = _base._figure("test", 3, 2)
    assert tuple(fig.get_size_inches()) == (3, 2) and fig.dpi == viz.DPI
    assert type(fig.canvas).__name__ == "FigureCanvasAgg"


def test_helpers():
    assert _base._grid(5, 3) == (2, 3) and _base._grid(2, 8) == (1, 2)
    assert _base._runs({"a": {"loss": [1]}, "b": {"loss": [2]}}) == {"a": {"loss": [1]},
                                                                       "b": {"loss": [2]}}
    assert _base._runs({"loss": [1]}) == {None: {"loss": [1]}}
    x, y = _base._xy([3, 2, 1])
    assert x.tolist() == [1, 2, 3] and y.tolist() == [3, 2, 1]
    x, y = _base._xy(([10, 20], [1, 2]))
    assert x.tolist() == [10, 20]
    with pytest.raises(ValueError, match="2 x values for 3 y values"):
        _base._xy(([1, 2], [1, 2, 3]))
    assert _base._log_worthy([1, 10, 100, float("nan")])
    assert not _base._log_worthy([1, 10]) and not _base._log_worthy([0, 1, 1000])
