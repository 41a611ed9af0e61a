"""Plumbing of cdl.viz: a Figure on an Agg canvas (or the install hint), saving, helpers."""
import os
from collections.abc import Mapping

import numpy as np

DPI = 100
HINT = 'cdl.viz.{} needs matplotlib: pip install "cdl[plot]"'


def _figure(who, width, height):
    """A Figure of width x height inches on an Agg canvas; ImportError with HINT without
    matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(HINT.format(who)) from None
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def available():
    """True when matplotlib can be imported (the extra ``cdl[plot]`` is installed)."""
    try:
        _figure("available", 1, 1)
    except ImportError:
        return False
    return True


def _require(who):
    """Raise the install hint now, before any work, when matplotlib is missing."""
    _figure(who, 1, 1)


def _finish(fig, path):
    if path is not None:
        fig.savefig(os.fspath(path), dpi=DPI, format="png")
    return fig


def _host(a):
    from cdl.cuda import to_host
    return np.asarray(to_host(a))


def _grid(n, max_cols):
    cols = max(1, min(n, max_cols))
    return -(-n // cols), cols


def _runs(obj):
    """{name: value} for a mapping of mappings, else {None: obj}."""
    if isinstance(obj, Mapping) and obj and all(isinstance(v, Mapping) for v in obj.values()):
        return dict(obj)
    return {None: obj}


def _xy(value):
    """(x, y) arrays of a curve given as y or as (x, y)."""
    if isinstance(value, tuple) and len(value) == 2:
        x, y = (np.asarray(v, dtype=np.float64).ravel() for v in value)
    else:
        y = np.asarray(value, dtype=np.float64).ravel()
        x = np.arange(1, len(y) + 1, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"cdl.viz: a curve has {len(x)} x values for {len(y)} y values")
    return x, y


def _log_worthy(values):
    """True when finite values are all positive and span two decades or more."""
    v = np.asarray([a for a in values if np.isfinite(a)], dtype=np.float64)
    return v.size > 1 and v.min() > 0 and v.max() / v.min() >= 100


def _outside_legend(fig, axes, where="right"):
    """One figure legend outside the panels, for the labels of all of them."""
    handles, labels, seen = [], [], set()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen:
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if not handles:
        return
    if where == "right":
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    else:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
                   fontsize=8)
