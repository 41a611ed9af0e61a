"""cdl.tune.runner: search (grid, random), pruning by the median rule, failed trials, the
validation split, parallel trials."""
import functools
import itertools
import math
import os
import sys
import textwrap

import numpy as np
import pytest

from cdl import tune


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
