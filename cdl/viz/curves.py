"""Curves: learning curves, named series, optimizer paths on contours, search trials."""
from collections.abc import Mapping

import numpy as np

from cdl.viz._base import (_figure, _finish, _grid, _log_worthy, _outside_legend, _require,
                          _runs, _xy)


# -- training curves ----------------------------------------------------------
_PANELS = (("loss", "loss", "val_loss"), ("accuracy", "train_acc", "val_acc"))


def learning_curves(history, path=None, title=None, val_label="validation"):
    """Loss and accuracy per epoch, train (solid) vs validation (dashed), from a history.

    history: the dict ``Trainer.fit`` returns ("epoch", "loss", "train_acc",
    "val_loss", "val_acc"; what is missing is left out), or a dict of such
    dicts by run name, drawn over each other with one colour per run. The loss
    axis is logarithmic when the loss spans two decades. val_label names the
    val_* curves ("test" when the test set was passed as validation data).
    path: the PNG to write (none when None); title: the figure's title.
    """
    _require("learning_curves")
    runs = _runs(history)
    for name, h in runs.items():
        if not isinstance(h, Mapping) or not any(h.get(k) for _, *ks in _PANELS for k in ks):
            what = "history" if name is None else f"history {name!r}"
            raise ValueError(f"cdl.viz.learning_curves: {what} has none of 'loss', "
                             f"'train_acc', 'val_loss', 'val_acc'")
    panels = [(label, keys) for label, *keys in _PANELS
              if any(h.get(k) for h in runs.values() for k in keys)]
    single = len(runs) == 1
    legend_right = not single and len(runs) > 3
    fig = _figure("learning_curves", 4.6 * len(panels) + (1.6 if legend_right else 0.4), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, keys) in zip(axes, panels):
        values = []
        for i, (name, h) in enumerate(runs.items()):
            for key, style in zip(keys, ("-", "--")):
                y = h.get(key)
                if not y:
                    continue
                y = np.asarray(y, dtype=np.float64)
                x = np.asarray(h.get("epoch") or range(1, len(y) + 1))[-len(y):]
                which = "train" if key in ("loss", "train_acc") else val_label
                lab = which if single else (name if style == "-" else None)
                ax.plot(x, y, style, color=f"C{i % 10}" if not single else
                        ("C0" if key in ("loss", "train_acc") else "C1"), label=lab,
                        marker="o" if len(y) <= 12 else None, markersize=3)
                values.extend(y)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if label == "loss" and _log_worthy(values):
            ax.set_yscale("log")
        if label == "accuracy":
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, min(hi, 1.005))
        ax.grid(alpha=0.3)
        ax.set_title(label if single else f"{label} (solid: train, dashed: {val_label})",
                     fontsize=9)
        if single or not legend_right:
            ax.legend(fontsize=8, loc="best")
    if legend_right:
        _outside_legend(fig, axes)
    if title is None and single:
        h = next(iter(runs.values()))
        short = "val" if val_label == "validation" else val_label
        parts = [f"{k.replace('val_', short + ' ').replace('_', ' ')} {h[k][-1]:.4f}" for k in
                 ("loss", "val_loss", "train_acc", "val_acc") if h.get(k)]
        title = f"after epoch {len(h.get('loss') or h.get('train_acc') or [])}: " + \
            ", ".join(parts)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def curves(series, path=None, xlabel=None, ylabel=None, title=None, logx=False, logy=False,
           ylim=None, smooth=1, max_cols=3):
    """Named curves on one panel, or on a grid of panels sharing their axes.

    series: {label: y or (x, y)} for one panel (x defaults to 1, 2, ...), or
    {panel title: {label: y or (x, y)}} for several, one colour per label
    across panels and one legend under them. smooth > 1 draws the moving
    average over that many points. xlabel and logx may be one value or one per panel;
    ylabel, logy (a log y axis) and ylim (bottom, top) apply to every panel, laid
    out at most max_cols to a row. path: the PNG to write (none when None); title:
    the figure's title.
    """
    _require("curves")
    panels = _runs(series)
    if not all(isinstance(p, Mapping) and p for p in panels.values()):
        raise ValueError("cdl.viz.curves: series must be {label: y or (x, y)} or "
                         "{panel: {label: y or (x, y)}}, none empty")
    single = len(panels) == 1
    rows, cols = _grid(len(panels), max_cols)
    labels = {label for p in panels.values() for label in p}
    legend_right = single and len(labels) > 4  # a legend inside would hide curves
    if single:
        fig = _figure("curves", 6.2 if legend_right else 5.2, 3.8)
    else:
        fig = _figure("curves", 3.5 * cols + 0.4, 2.7 * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=not single and ylim is not None)
    colors = {}
    xlabels = [xlabel] * len(panels) if xlabel is None or isinstance(xlabel, str) else \
        list(xlabel)
    for k, (ax, (name, panel)) in enumerate(zip(axes.flat, panels.items())):
        for label, value in panel.items():
            x, y = _xy(value)
            if smooth > 1 and len(y) >= smooth:
                y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
                x = x[smooth - 1:]
            color = colors.setdefault(label, f"C{len(colors) % 10}")
            ax.plot(x, y, color=color, label=label, linewidth=1.2)
        if logx if isinstance(logx, bool) else logx[k]:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        if xlabels[k]:
            ax.set_xlabel(xlabels[k])
        if ylabel and (single or k % cols == 0):
            ax.set_ylabel(ylabel)
        if name is not None:
            ax.set_title(str(name), fontsize=9)
        ax.grid(alpha=0.3)
        if single and not legend_right:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if legend_right:
        _outside_legend(fig, axes.flat[:1])
    elif not single:
        _outside_legend(fig, list(axes.flat)[:len(panels)], where="bottom")
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


# -- optimizers and searches ---------------------------------------------------------
def optimizer_paths(f, paths, path=None, xlim=None, ylim=None, levels=15, minimum=None,
                    titles=None, max_cols=4):
    """Each optimizer's path over the contour lines of f(x, y), one panel each (the book's
    figure 6-8).

    f(X, Y) -> Z evaluates the function on arrays (NumPy broadcasting); paths:
    {name: array (steps + 1, 2)} of the points visited. Limits default to the
    paths' extent (and the minimum, a marked (x, y)); xlim and ylim, pairs
    (low, high), set them. levels contour levels, spaced geometrically when f
    is positive. titles: {name: text} replaces the default "name: k steps".
    Panels go at most max_cols to a row; path: the PNG to write (none when
    None).
    """
    _require("optimizer_paths")
    if not paths:
        raise ValueError("cdl.viz.optimizer_paths: no paths")
    paths = {k: np.asarray(v, dtype=np.float64).reshape(-1, 2) for k, v in paths.items()}
    pts = np.concatenate([p[np.isfinite(p).all(1)] for p in paths.values()] +
                         ([np.asarray(minimum, dtype=np.float64).reshape(1, 2)]
                          if minimum is not None else []))
    lims = []
    for axis, given in ((0, xlim), (1, ylim)):
        if given is not None:
            lims.append(tuple(given))
            continue
        lo, hi = pts[:, axis].min(), pts[:, axis].max()
        pad = 0.1 * (hi - lo) or 1.0
        lims.append((lo - pad, hi + pad))
    X, Y = np.meshgrid(np.linspace(*lims[0], 200), np.linspace(*lims[1], 200))
    Z = np.asarray(f(X, Y), dtype=np.float64)
    finite = Z[np.isfinite(Z)]
    if finite.size and finite.min() > 0:
        # geometric from a thousandth of the top: finer steps would crowd at the minimum
        lv = np.geomspace(max(finite.min(), finite.max() * 1e-3), finite.max(), levels)
    else:
        lv = levels
    rows, cols = _grid(len(paths), max_cols)
    fig = _figure("optimizer_paths", 3.2 * cols + 0.3, 2.7 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (name, p) in zip(axes.flat, paths.items()):
        ax.contour(X, Y, Z, levels=lv, colors="0.6", linewidths=0.6)
        ax.plot(p[:, 0], p[:, 1], "o-", color="tab:red", markersize=2, linewidth=0.8)
        ax.plot(p[0, 0], p[0, 1], "s", color="tab:red", markersize=5)
        if minimum is not None:
            ax.plot(*minimum, "+", color="tab:blue", markersize=12, mew=2)
        ax.set_xlim(*lims[0])
        ax.set_ylim(*lims[1])
        ax.tick_params(labelsize=7)
        ax.xaxis.get_major_locator().set_params(nbins=5)
        text = (titles or {}).get(name, f"{name}: {len(p) - 1} steps")
        ax.set_title(text, fontsize=9)
    for ax in list(axes.flat)[len(paths):]:
        ax.axis("off")
    return _finish(fig, path)


def _fmt(v):
    return f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)


def _kind(trial):
    """"complete", "pruned" (stopped early: its last report is drawn) or "failed"."""
    state = trial.get("state")
    if state in ("pruned", "failed"):
        return state
    return "complete" if trial.get("score") is not None and \
        np.isfinite(float(trial["score"])) else "failed"


def trials(trials, path=None, title=None):
    """A search's trials: the score against each hyperparameter, one panel per parameter.

    trials: dicts with "params" ({name: value}) and "score" (higher is
    better; None or NaN when there is none), as cdl.tune.search returns
    them; its "state" and "reports" ([(epoch, score), ...]) are used when
    present: a pruned trial is a grey ring at its last report, a failed one
    (or one without a score) a red cross on the bottom edge. Numeric
    parameters spanning two decades get a log axis, others (strings,
    booleans) one position per value. The best trial is a red star; the
    title (default) gives its score and parameters. path: the PNG to write
    (none when None).
    """
    _require("trials")
    trials = list(trials)
    if not trials:
        raise ValueError("cdl.viz.trials: no trials")
    names = []
    for tr in trials:
        for k in tr["params"]:
            if k not in names:
                names.append(k)
    kinds = np.array([_kind(tr) for tr in trials])
    scores = np.full(len(trials), np.nan)
    for i, tr in enumerate(trials):
        if kinds[i] == "complete":
            scores[i] = float(tr["score"])
        elif kinds[i] == "pruned" and tr.get("reports"):
            scores[i] = float(tr["reports"][-1][1])
    done = kinds == "complete"
    best = int(np.argmax(np.where(done, scores, -np.inf))) if done.any() else None
    fig = _figure("trials", 3.5 * max(len(names), 1) + 0.4, 3.7)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False, sharey=True)[0]
    pruned = (kinds == "pruned") & np.isfinite(scores)
    failed = ~done & ~pruned
    for ax, name in zip(axes, names):
        values = [tr["params"].get(name) for tr in trials]
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                      for v in values)
        if numeric:
            xs = np.asarray(values, dtype=np.float64)
            if _log_worthy(xs):
                ax.set_xscale("log")
        else:
            cats = sorted({str(v) for v in values})
            xs = np.array([cats.index(str(v)) for v in values], dtype=np.float64)
            ax.set_xticks(range(len(cats)), cats, fontsize=8)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        ax.scatter(xs[done], scores[done], s=18, color="C0", alpha=0.8, label="complete")
        if pruned.any():
            ax.scatter(xs[pruned], scores[pruned], s=18, facecolors="none", edgecolors="0.5",
                       label="pruned (last report)")
        if failed.any():  # no score: on the bottom edge, where the axis ends
            ref = np.nanmin(scores) if np.isfinite(scores).any() else 0.0
            ax.plot(xs, np.full(len(xs), ref), alpha=0)  # the x range holds them too
            ax.scatter(xs[failed], np.zeros(failed.sum()), s=22, marker="x", color="tab:red",
                       transform=ax.get_xaxis_transform(), clip_on=False, label="failed")
        if best is not None:
            ax.scatter([xs[best]], [scores[best]], s=120, marker="*", color="tab:red",
                       zorder=3, label="best")
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score")
    _outside_legend(fig, axes[:1], where="bottom")
    if title is None:
        counts = [f"{int((kinds == k).sum())} {k}" for k in ("pruned", "failed")
                  if (kinds == k).any()]
        title = f"{len(trials)} trials" + (f" ({', '.join(counts)})" if counts else "")
        if best is not None:
            title += f"; best score {scores[best]:.4g} at " + ", ".join(
                f"{k}={_fmt(v)}" for k, v in trials[best]["params"].items())
    fig.suptitle(title, fontsize=10)
    return _finish(fig, path)
