"""Hyperparameter search: grid, random (log-uniform ranges, as the book's chapter 6)
and Bayesian optimization with Optuna's TPE (``pip install 'cdl[tune]'``).

    from cdl import tune
    space = {"lr": tune.LogUniform(1e-4, 1e-1), "weight_decay": tune.LogUniform(1e-8, 1e-4)}
    trials = tune.search(space, objective, method="random", n_trials=20, seed=0,
                         data=(x_train, t_train))     # validation carved from it
    best = trials[0]                                  # {"params", "score", "epochs", ...}

``objective(params, report, data)`` trains with params, calls ``report(epoch,
score)`` after each epoch (the search may stop it there by raising
``Pruned``) and returns the validation score to maximize. See
``cdl.tune.runner`` for pruning and parallel trials, ``cdl.tune.builtin``
for the objective of ``cdl tune`` (the built-in models on the digits).
"""
from cdl.tune.runner import METHODS, Pruned, search, split_validation
from cdl.tune.space import LogUniform, Uniform

__all__ = ["search", "split_validation", "Uniform", "LogUniform", "Pruned", "METHODS"]
