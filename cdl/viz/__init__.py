"""Figures of training runs: curves, filters, activations, confusion, optimizer paths, trials.

    from cdl import viz
    history = Trainer(net, opt, epochs=10).fit(x, t, validation_data=(xt, tt))
    viz.learning_curves(history, "curves.png")          # loss and accuracy, train vs val
    viz.confusion_matrix(net, xt, tt, "confusion.png")
    viz.filters(net, "filters.png", before=w0)  # w0 = viz.first_weights(net) before training
    viz.activation_histograms({"He": net1, "0.01": net2}, x, "activations.png")
    viz.misclassified(net, xt, tt, "mistakes.png")
    viz.optimizer_paths(lambda x, y: x**2 / 20 + y**2, {"SGD": path}, "paths.png")
    viz.trials(cdl.tune.search(...), "trials.png")
    viz.curves({"Adam": losses, "SGD": (steps, losses2)}, "loss.png", xlabel="iteration")

Every function returns a ``matplotlib.figure.Figure`` and, given ``path``,
writes it as a PNG of DPI (100) pixels per inch of the figure's size. The
figures are built on ``Figure`` and the Agg canvas directly, never through
pyplot: no global state, the backend the user chose stays as it is, and
figures may be drawn from several threads. Show one in a notebook with
``IPython.display.display(fig)``.

matplotlib is the optional extra ``cdl[plot]``; without it every function
raises ImportError saying how to install it. Nothing else in cdl imports
matplotlib, and importing cdl.viz alone does not either.
"""
from cdl.viz._base import DPI, HINT, available
from cdl.viz.curves import curves, learning_curves, optimizer_paths, trials
from cdl.viz.model import (activation_histograms, confusion_counts, confusion_matrix, filters,
                           first_weights, misclassified)

__all__ = ["learning_curves", "curves", "confusion_matrix", "confusion_counts",
           "misclassified", "filters", "activation_histograms", "optimizer_paths", "trials",
           "first_weights", "available", "DPI", "HINT"]
