"""cdl.tune as a package: its names, reachable from `import cdl`, and the docstring's example."""
import subprocess
import sys

import numpy as np

import cdl


def test_exported_names():
    from cdl import tune
    assert set(tune.__all__) == {"search", "split_validation", "Uniform", "LogUniform",
                                 "Pruned", "METHODS"}
    for name in tune.__all__:
        assert getattr(tune, name) is not None
    assert set(tune.METHODS) == {"grid", "random", "tpe"}
    assert issubclass(tune.Pruned, Exception)


def test_reachable_from_import_cdl_without_importing_optuna():
    code = ("import sys, cdl; cdl.tune.search; "
            "assert 'optuna' not in sys.modules, 'optuna imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_docstring_example():
    from cdl import tune
    x = np.arange(40, dtype=np.float32).reshape(40, 1)
    t = np.arange(40) % 2
    seen = []

    def objective(params, report, data):
        (xa, ta), (xv, tv) = data
        seen.append((len(xa), len(xv)))
        report(1, -params["lr"])
        return -params["lr"]

    space = {"lr": tune.LogUniform(1e-4, 1e-1), "weight_decay": tune.LogUniform(1e-8, 1e-4)}
    trials = tune.search(space, objective, method="random", n_trials=4, seed=0, data=(x, t))
    assert len(trials) == 4 and seen == [(32, 8)] * 4
    assert trials[0]["score"] == max(t["score"] for t in trials)
    assert cdl.tune is tune
