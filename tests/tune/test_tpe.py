"""cdl.tune's TPE method (Optuna): optional, reproducible by seed, prunes; without Optuna, an
install hint."""
import sys

import pytest

from cdl import tune
from cdl.cli import main


def _quadratic(params, report):
    """Best at a = 2; reports a score that grows with the epoch."""
    score = -abs(params["a"] - 2)
    for epoch in range(1, 4):
        report(epoch, score * epoch)
    return score


def test_tpe_without_optuna_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(ImportError, match=r"cdl\[tune\]"):
        tune.search({"a": tune.Uniform(0, 4)}, _quadratic, "tpe", n_trials=2)
    assert main(["tune", "--method", "tpe", "--trials", "2", "--epochs", "1"]) == 2
    assert "pip install 'cdl[tune]'" in capsys.readouterr().err


def test_tpe_runs_and_prunes():
    optuna = pytest.importorskip("optuna")
    space = {"a": tune.Uniform(0, 4), "lr": tune.LogUniform(1e-4, 1e-1), "k": ["u", (1, 2)]}
    verbosity = optuna.logging.get_verbosity()
    trials = tune.search(space, _quadratic, "tpe", n_trials=12, seed=0, min_trials=2)
    assert optuna.logging.get_verbosity() == verbosity  # restored
    assert len(trials) == 12 and trials[0]["state"] == "complete"
    assert all(0 <= t["params"]["a"] <= 4 and 1e-4 <= t["params"]["lr"] <= 1e-1
               and t["params"]["k"] in ("u", (1, 2)) for t in trials)
    assert any(t["state"] == "pruned" and t["epochs"] < 3 for t in trials)
    again = tune.search(space, _quadratic, "tpe", n_trials=12, seed=0, min_trials=2)
    assert [t["params"] for t in again] == [t["params"] for t in trials]
