"""What a model computes: confusion matrix, misclassified images, filters, activations."""
import math
from collections.abc import Mapping

import numpy as np

from cdl.viz._base import _figure, _finish, _grid, _host, _require


# -- predictions ----------------------------------------------------------------
def _predictions(model, x, t, batch_size):
    """(predicted, true) integer labels of model on x against t (labels or one-hot)."""
    scores = _host(model.predict(x, batch_size))
    if scores.ndim == 1 or scores.shape[1] == 1:  # one sigmoid output: positive class when > 0
        pred = (scores.reshape(len(scores)) > 0).astype(np.int64)
    else:
        pred = scores.reshape(len(scores), -1).argmax(1)
    t = _host(t)
    true = t.argmax(1) if t.ndim == 2 else t.astype(np.int64).ravel()
    if len(true) != len(pred):
        raise ValueError(f"cdl.viz: {len(true)} targets for {len(pred)} samples")
    return pred, true


def confusion_counts(model, x, t, num_classes=None, batch_size=1000):
    """(K, K) int64 counts: row = true class, column = predicted class (no matplotlib).

    model's predictions on x, computed batch_size samples at a time, against the
    labels t (or one-hot rows); K is num_classes, by default the largest class seen + 1.
    """
    pred, true = _predictions(model, x, t, batch_size)
    k = num_classes or int(max(pred.max(initial=0), true.max(initial=0))) + 1
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    return counts


def _names(labels, k):
    return [str(i) for i in range(k)] if labels is None else [str(s) for s in labels]


def confusion_matrix(model, x, t, path=None, labels=None, batch_size=1000):
    """The confusion matrix of model's predictions on x against t, counts in each cell.

    Rows are the true classes, columns the predicted ones; the title gives the
    accuracy of these same predictions. labels: class names (default 0..K-1).
    Predictions run batch_size samples at a time; path: the PNG to write (none
    when None).
    """
    _require("confusion_matrix")
    counts = confusion_counts(model, x, t, None if labels is None else len(labels), batch_size)
    k, n = len(counts), int(counts.sum())
    names = _names(labels, k)
    side = max(4.2, 0.42 * k + 1.8)
    fig = _figure("confusion_matrix", side + 0.8, side)
    ax = fig.subplots()
    im = ax.imshow(counts, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="images")
    if k <= 30:
        big = counts.max() / 2
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                            fontsize=8 if k <= 12 else 6,
                            color="white" if counts[i, j] > big else "black")
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0,
                  ha="right" if max(map(len, names)) > 2 else "center", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    correct = int(np.trace(counts))
    ax.set_title(f"{correct:,} of {n:,} correct ({correct / max(n, 1):.1%})", fontsize=10)
    return _finish(fig, path)


def _flat_shape(d):
    """(H, W) or (3, H, W) of a flat sample of d values: a square, or three squares."""
    side, rgb = math.isqrt(d), math.isqrt(d // 3)
    if side * side == d:
        return (side, side)
    if 3 * rgb * rgb == d:
        return (3, rgb, rgb)
    raise ValueError(f"cdl.viz: cannot show a flat sample of {d} values as an image (not a "
                     f"square, nor 3 squares); give the model an input_shape")


def _image(x, shape=None):
    """One sample as a 2-D (H, W) or RGB (H, W, 3) array, scaled to [0, 1]."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(shape if shape is not None and int(np.prod(shape)) == a.size
                      else _flat_shape(a.size))
    if a.ndim == 3:
        a = np.moveaxis(a, 0, -1) if a.shape[0] == 3 else a[0]
    lo, hi = np.nanmin(a), np.nanmax(a)
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def misclassified(model, x, t, path=None, labels=None, max_images=24, batch_size=1000,
                  max_cols=8):
    """A grid of the first max_images samples of x that model gets wrong, each titled with
    the predicted label (red) over the true one; the title counts all mistakes.

    t: the labels (or one-hot rows); labels: class names (default 0..K-1).
    Predictions run batch_size samples at a time; the grid has at most max_cols
    columns. path: the PNG to write (none when None).
    """
    _require("misclassified")
    pred, true = _predictions(model, x, t, batch_size)
    wrong = np.flatnonzero(pred != true)
    shown = wrong[:max_images]
    k = int(max(pred.max(initial=0), true.max(initial=0))) + 1
    names = _names(labels, max(k, 0 if labels is None else len(labels)))
    rows, cols = _grid(max(len(shown), 1), max_cols)
    fig = _figure("misclassified", 1.25 * cols + 0.3, 1.55 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    shape = getattr(model, "input_shape", None)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown):
        img = _image(_host(x[i]), shape)
        ax.imshow(img, cmap="gray_r" if img.ndim == 2 else None, interpolation="nearest")
        ax.set_title(f"{names[pred[i]]}\n", color="tab:red", fontsize=8, pad=2)
        ax.text(0.5, 1.0, f"true {names[true[i]]}", transform=ax.transAxes, ha="center",
                va="bottom", fontsize=7)
    if not len(shown):
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(f"{len(wrong):,} of {len(true):,} misclassified"
                 + (f" (first {len(shown)} shown)" if len(wrong) > len(shown) else "")
                 + "; above each: predicted (red), true", fontsize=10)
    return _finish(fig, path)


# -- weights and activations ---------------------------------------------------------
def _first_weights(obj):
    """(W on the host, input shape or None) of a layer, a model's first weighted layer, or W."""
    if hasattr(obj, "layers"):
        from cdl.model import walk
        for _, layer in walk(obj.layers):
            w = layer.params.get("W") if hasattr(layer, "params") else None
            if w is not None and w.ndim in (2, 4):
                return _host(w), getattr(obj, "input_shape", None)
        raise ValueError("cdl.viz.filters: the model has no layer with a weight W")
    if hasattr(obj, "params"):
        if "W" not in obj.params:
            raise ValueError(f"cdl.viz.filters: {type(obj).__name__} has no weight W")
        return _host(obj.params["W"]), None
    return _host(obj), None


def first_weights(model):
    """A NumPy copy of the weight W of the model's first layer that has one (for
    ``filters(..., before=...)``: take it before training)."""
    return np.array(_first_weights(model)[0], copy=True)


def _filter_images(w, input_shape):
    """(images (F, H, W) or (F, H, W, 3), note) of a weight, each scaled to [-1, 1]."""
    if w.ndim == 4:  # (F, C, KH, KW)
        c = w.shape[1]
        imgs = np.moveaxis(w, 1, -1) if c == 3 else w[:, 0]
        note = "" if c in (1, 3) else f"input channel 1 of {c}"
    elif w.ndim == 2:  # Affine (D, F): each column an image of the input's shape
        d = w.shape[0]
        shape = tuple(input_shape) if input_shape is not None and \
            int(np.prod(input_shape)) == d else _flat_shape(d)
        imgs = w.T.reshape(w.shape[1], *shape)
        c = shape[0] if len(shape) == 3 else 1
        if imgs.ndim == 4:
            imgs = np.moveaxis(imgs, 1, -1) if c == 3 else imgs[:, 0]
        note = "" if c in (1, 3) else f"input channel 1 of {c}"
    else:
        raise ValueError(f"cdl.viz.filters: a weight of shape {w.shape} is not a Conv2D "
                         f"(F, C, KH, KW) or Affine (D, F) weight")
    scale = np.abs(imgs.reshape(len(imgs), -1)).max(axis=1)
    scale[scale == 0] = 1
    return imgs / scale.reshape(-1, *([1] * (imgs.ndim - 1))), note


def _mosaic(imgs, cols):
    """One array of the images in a grid, one NaN pixel between them."""
    n, h, w = imgs.shape[:3]
    rows = -(-n // cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, *imgs.shape[3:]), np.nan)
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img
    return out


def filters(layer, path=None, before=None, max_filters=64, title=None):
    """First-layer filters as a grid of images: mid-grey 0, white positive, black negative.

    layer: a Conv2D (W of shape (F, C, KH, KW)), an Affine whose inputs are
    images ((D, F), D = H*W or 3*H*W, or the model's input_shape), a model
    (its first layer with a W), or the weight itself. Each filter is scaled by
    its own largest magnitude. before: the same weight before training (an
    array copied then, or a layer or model): the two grids side by side.
    A single-channel filter is grey, a 3-channel one RGB; of more channels the
    first is shown. At most max_filters are drawn; title: the figure's title;
    path: the PNG to write (none when None).
    """
    _require("filters")
    import matplotlib
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
    grids = [("after training" if before is not None else None, _first_weights(layer))]
    if before is not None:
        grids.insert(0, ("before training", _first_weights(before)))
        if grids[0][1][0].shape != grids[1][1][0].shape:
            raise ValueError(f"cdl.viz.filters: before has shape {grids[0][1][0].shape}, the "
                             f"layer's W {grids[1][1][0].shape}")
    shown = []
    for name, (w, shape) in grids:
        imgs, note = _filter_images(w, shape)
        shown.append((name, imgs[:max_filters], note, len(imgs)))
    n = len(shown[0][1])
    cols = min(n, max(4, math.ceil(math.sqrt(n * 1.5))))
    rows = -(-n // cols)
    h, w = shown[0][1].shape[1:3]
    panel_w = 4.0 if len(shown) == 2 else 5.0
    fig = _figure("filters", panel_w * len(shown) + 0.3,
                  panel_w * rows * (h + 1) / (cols * (w + 1)) + 0.9)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, (name, imgs, note, total) in zip(axes, shown):
        m = _mosaic((imgs + 1) / 2, cols)  # [-1, 1] -> [0, 1]: 0 is mid-grey
        ax.imshow(m if m.ndim == 2 else np.nan_to_num(m, nan=1.0), cmap=cmap, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.axis("off")
        sub = [s for s in (name, f"{len(imgs)} of {total}" if total > len(imgs) else "", note)
               if s]
        if sub:
            ax.set_title(", ".join(sub), fontsize=9)
    w0 = shown[-1]
    fig.suptitle(title or f"first-layer filters ({w0[3]} of {h}x{w}; each scaled to its own "
                          f"range, grey = 0)", fontsize=10)
    return _finish(fig, path)


_builtin_range = range  # activation_histograms takes a range= argument
_ACTIVATIONS = ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Step")


def _activations(model, x):
    """[(kind, output)] after each activation layer of the model's top level (every layer's
    output but the last when it has none), in inference mode."""
    layers = list(model.layers) if hasattr(model, "layers") else list(model)
    outs = []
    for layer in layers:
        x = layer.forward(x, train=False)
        outs.append((layer.name, _host(x)))
    acts = [o for o in outs if o[0] in _ACTIVATIONS]
    return acts or outs[:-1] or outs


def activation_histograms(model, x, path=None, bins=30, range=None):
    """Histograms of each activation layer's output for input x (the weight-init figure).

    model: a Sequential (or a list of layers), or {name: model} for one row
    per model. Layers run in inference mode; the outputs of ReLU, LeakyReLU,
    Sigmoid, Tanh and Step layers at the top level are shown (every layer's
    when there are none). range: the histograms' (lo, hi), or {row name:
    (lo, hi)}; by default each row spans from its lowest to its highest
    value, so a collapse towards 0 or a blow-up shows against the other
    layers. Each panel gives its std; where more than a fifth of the values
    are exactly 0 (ReLU), the zeros are counted in the text, not drawn, so
    their spike does not flatten the rest. bins: the number of bins per
    histogram; path: the PNG to write (none when None).
    """
    _require("activation_histograms")
    rows = {name: _activations(m, x) for name, m in _runs_of_models(model).items()}
    cols = max(len(r) for r in rows.values())
    kinds = [{acts[c][0] for acts in rows.values() if c < len(acts)}
             for c in _builtin_range(cols)]
    fig = _figure("activation_histograms", 2.1 * cols + 0.6, 1.6 * len(rows) + 0.6)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (name, acts) in enumerate(rows.items()):
        given = range.get(name) if isinstance(range, Mapping) else range
        if given is not None:
            lo, hi = given
        else:
            lo = min(float(np.nanmin(a)) for _, a in acts)
            hi = max(float(np.nanmax(a)) for _, a in acts)
            hi = hi if hi > lo else lo + 1
        for c, ax in enumerate(axes[r]):
            if c >= len(acts):
                ax.axis("off")
                continue
            kind, a = acts[c]
            values = a.ravel()
            zeros = float(np.mean(values == 0))
            note = f"std {a.std():.3g}"
            if zeros > 0.2:
                values = values[values != 0]
                note += f"\n{zeros:.0%} zeros"
            counts, _, _ = ax.hist(values, bins=bins, range=(lo, hi), color=f"C{r % 10}")
            ax.set_ylim(0, 1.45 * max(counts.max(), 1))  # room for the note above the bars
            ax.set_yticks([])
            ax.tick_params(labelsize=7)
            ax.text(0.97, 0.96, note, transform=ax.transAxes, ha="right", va="top", fontsize=7)
            if r == 0:  # the layer's kind only when every row has the same there
                ax.set_title(f"layer {c + 1}" + (f" ({kind})" if len(kinds[c]) == 1 else ""),
                             fontsize=9)
            if c == 0 and name is not None:
                ax.set_ylabel(str(name), fontsize=8)
    fig.suptitle(f"activations of {len(x):,} inputs, per layer"
                 + (" (each row on its own range)" if range is None and len(rows) > 1 else ""),
                 fontsize=10)
    return _finish(fig, path)


def _runs_of_models(model):
    if isinstance(model, Mapping):
        if not model:
            raise ValueError("cdl.viz.activation_histograms: no models")
        return dict(model)
    return {None: model}
