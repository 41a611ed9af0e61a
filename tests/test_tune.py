import functools
import itertools
import math
import os
import re
import sys
import textwrap

import numpy as np
import pytest

from cdl import tune
from cdl.cli import main
from cdl.tune.space import random_points


def _quadratic(params, report):
    """Best at a = 2; reports a score that grows with the epoch."""
    score = -abs(params["a"] - 2)
    for epoch in range(1, 4):
        report(epoch, score * epoch)
    return score


def test_grid_enumerates_the_full_product():
    space = {"a": [1, 2, 3], "b": ["x", "y"]}
    seen = []

    def objective(params, report):
        seen.append(params)
        return params["a"] + (params["b"] == "y") / 10

    trials = tune.search(space, objective, "grid")
    assert seen == [{"a": a, "b": b} for a, b in itertools.product([1, 2, 3], ["x", "y"])]
    assert [t["score"] for t in trials] == sorted((t["score"] for t in trials), reverse=True)
    assert trials[0]["params"] == {"a": 3, "b": "y"} and trials[0]["state"] == "complete"
    assert {"params", "score", "epochs", "seconds", "state", "number"} <= set(trials[0])
    assert len(tune.search(space, objective, "grid", n_trials=4)) == 4  # the first 4 of it


def test_grid_refuses_ranges_and_ranges_make_grids():
    with pytest.raises(ValueError, match=r"grid search needs lists.*\.grid\(k\)"):
        tune.search({"lr": tune.LogUniform(1e-4, 1e-1)}, _quadratic, "grid")
    assert np.allclose(tune.LogUniform(1e-4, 1e-1).grid(4), [1e-4, 1e-3, 1e-2, 1e-1])
    assert tune.Uniform(0, 1).grid(3) == [0.0, 0.5, 1.0]
    assert tune.LogUniform(1e-4, 1e-2).grid(1) == pytest.approx([1e-3])


def test_random_is_reproducible_by_seed_and_log_uniform_within_bounds():
    space = {"lr": tune.LogUniform(1e-6, 1e-2), "wd": tune.Uniform(0.0, 0.5), "k": [3, 5]}
    draws = lambda seed: [t["params"] for t in sorted(  # noqa: E731
        tune.search(space, lambda p, r: 0.0, "random", n_trials=5, seed=seed),
        key=lambda t: t["number"])]
    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    points = random_points(space, 4000, seed=0)
    lr = np.array([p["lr"] for p in points])
    assert lr.min() >= 1e-6 and lr.max() <= 1e-2
    # log-uniform: each of the four decades gets a quarter of the draws
    counts = np.histogram(np.log10(lr), bins=[-6, -5, -4, -3, -2])[0]
    assert np.all(np.abs(counts / len(lr) - 0.25) < 0.03), counts
    assert all(0 <= p["wd"] <= 0.5 for p in points)
    assert {p["k"] for p in points} == {3, 5}


def test_ranges_check_their_bounds():
    with pytest.raises(ValueError, match="lo must be > 0"):
        tune.LogUniform(0, 1)
    with pytest.raises(ValueError, match="lo < hi"):
        tune.Uniform(2, 1)
    with pytest.raises(ValueError, match="non-empty list"):
        tune.search({"a": []}, _quadratic, "grid")
    with pytest.raises(ValueError, match="method"):
        tune.search({"a": [1]}, _quadratic, "bayes")
    with pytest.raises(ValueError, match="needs n_trials"):
        tune.search({"a": [1]}, _quadratic, "random")


def test_pruning_stops_a_bad_trial_early():
    runs = {}

    def objective(params, report):
        q = params["quality"]
        for epoch in range(1, 11):
            runs[q] = epoch
            report(epoch, q * epoch / 10)
        return q

    space = {"quality": [0.8, 1.0, 0.95, 0.1]}  # 0.95 beats the median of the first two
    trials = tune.search(space, objective, "grid", min_trials=2)
    bad = trials[-1]
    assert bad["params"] == {"quality": 0.1} and bad["state"] == "pruned"
    assert bad["epochs"] == 1 and runs[0.1] == 1  # stopped at its first report
    assert bad["score"] is None and bad["reports"] == [(1, pytest.approx(0.01))]
    assert [t["state"] for t in trials[:3]] == ["complete"] * 3 and runs[0.95] == 10
    assert all(t["state"] == "complete"
               for t in tune.search(space, objective, "grid", min_trials=2, prune=False))
    # warmup: no pruning at epochs below it
    assert tune.search(space, objective, "grid", min_trials=2, warmup=3)[-1]["epochs"] == 3


def test_failed_trials_are_recorded_and_ranked_last():
    def objective(params, report):
        if params["a"] == 1:
            raise RuntimeError("diverged")
        return math.nan if params["a"] == 2 else params["a"]

    trials = tune.search({"a": [1, 2, 3]}, objective, "grid")
    assert [t["state"] for t in trials] == ["complete", "failed", "failed"]
    errors = {t["params"]["a"]: t["error"] for t in trials}
    assert errors[1] == "RuntimeError: diverged" and "nan" in errors[2]
    assert trials[1]["score"] is None


def test_split_validation_is_stratified_disjoint_and_seeded():
    t = np.repeat(np.arange(5), 20)
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    (xa, ta), (xv, tv) = tune.split_validation(x, t, 0.2, seed=3)
    assert len(xv) == 20 and np.all(np.bincount(tv) == 4)
    assert set(xa[:, 0]) | set(xv[:, 0]) == set(range(100)) and not set(xa[:, 0]) & set(xv[:, 0])
    assert np.array_equal(tune.split_validation(x, t, 0.2, seed=3)[1][0], xv)
    with pytest.raises(ValueError, match="fraction"):
        tune.split_validation(x, t, 1.0)


def test_the_test_split_never_reaches_the_objective():
    """The objective records every sample it is handed: none is from the test part."""
    n = 200
    ids = np.arange(n, dtype=np.float32).reshape(n, 1)  # x holds each sample's index
    labels = np.arange(n) % 4
    rng = np.random.default_rng(0)
    test = rng.choice(n, size=50, replace=False)
    train = np.setdiff1d(np.arange(n), test)
    seen = set()

    def objective(params, report, data):
        (x, t), (xv, tv) = data
        seen.update(x[:, 0].astype(int).tolist())
        seen.update(xv[:, 0].astype(int).tolist())
        assert not set(x[:, 0]) & set(xv[:, 0])  # validation is held out from training too
        return float(len(xv))

    trials = tune.search({"a": [1, 2]}, objective, "grid", seed=0,
                         data=(ids[train], labels[train]), validation=0.25)
    assert trials[0]["score"] == pytest.approx(0.25 * len(train), abs=2)
    assert seen == set(train.tolist())
    assert not seen & set(test.tolist())


def test_cli_searches_only_the_training_part(monkeypatch):
    """`cdl tune` hands search the training part of the digits, never the test part."""
    from cdl import data
    captured = {}
    real = tune.search

    def spy(*args, **kwargs):
        captured.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tune, "search", spy)
    assert main(["tune", "--model", "mlp", "--trials", "1", "--epochs", "1"]) == 0
    (x, t), (xt, tt) = data.load_digits()
    xs, ts = captured["data"]
    assert np.array_equal(xs, x) and np.array_equal(ts, t) and len(xs) + len(xt) == 1797


def test_cli_tune_end_to_end(capsys):
    assert main(["tune", "--model", "mlp", "--trials", "2", "--epochs", "1",
                 "--method", "random", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "validation" in out and "test images stay out" in out
    rows = [line for line in out.splitlines() if re.match(r"\s+\d+\s+\d+\s+\S+\s+\S+\s+0\.", line)]
    assert len(rows) == 2 and all(line.rstrip().endswith("complete") for line in rows)
    best = re.search(r"cdl train --model mlp --epochs 1 --lr (\S+) --seed 1", out)
    assert best and 1e-4 <= float(best.group(1)) <= 3e-2
    assert "# and weight decay" in out


def test_cli_grid_is_a_grid_of_at_most_n(capsys):
    from cdl.tune import builtin
    space = builtin.grid_space(5)
    assert len(space["lr"]) * len(space["weight_decay"]) <= 5
    assert len(builtin.grid_space(2)["lr"]) == 2


@pytest.mark.parametrize("argv", [["tune", "--trials", "0"], ["tune", "--method", "bayes"],
                                  ["tune", "--jobs", "-1"]])
def test_cli_bad_option_is_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


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


_OBJECTIVES = textwrap.dedent('''
    import os

    def noisy_quadratic(params, report):
        for epoch in range(1, 3):
            report(epoch, -abs(params["a"] - 2) * epoch)
        return -abs(params["a"] - 2) + params["b"] / 100

    def elsewhere(params, report, parent):
        if os.getpid() == parent:
            raise RuntimeError("ran in the searching process")
        return noisy_quadratic(params, report)
''')


@pytest.fixture
def objectives(tmp_path, monkeypatch):
    """A module of objectives that worker processes can import (spawn passes sys.path)."""
    (tmp_path / "tune_objectives_for_test.py").write_text(_OBJECTIVES)
    monkeypatch.syspath_prepend(str(tmp_path))
    import tune_objectives_for_test
    yield tune_objectives_for_test
    sys.modules.pop("tune_objectives_for_test", None)


@pytest.mark.slow
def test_parallel_jobs_give_the_trials_of_a_serial_run(objectives):
    """About 5-10 s: two spawned processes each import cdl."""
    space = {"a": tune.Uniform(0, 4), "b": [0, 1]}
    key = lambda t: (t["number"], t["params"], t["score"], t["state"], t["epochs"])  # noqa: E731
    serial = tune.search(space, objectives.noisy_quadratic, "random", 6, seed=0, prune=False)
    # functools.partial of a top-level function travels to the workers too
    elsewhere = functools.partial(objectives.elsewhere, parent=os.getpid())
    parallel = tune.search(space, elsewhere, "random", 6, seed=0, prune=False, n_jobs=2)
    assert [key(t) for t in parallel] == [key(t) for t in serial]
    assert all(t["state"] == "complete" for t in parallel)


def test_parallel_refuses_an_objective_it_cannot_send():
    with pytest.raises(ValueError, match="picklable"):
        tune.search({"a": [1, 2]}, lambda p, r: 0.0, "grid", n_jobs=2)
