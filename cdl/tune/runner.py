"""Hyperparameter search: run trials of an objective, prune the bad ones, rank them.

    def objective(params, report, data):
        (x, t), (xv, tv) = data            # the validation split, carved by search
        ...                                # build with params, train, and each epoch:
        report(epoch, val_acc)             # may raise Pruned: let it through
        return val_acc                     # to maximize

    trials = search({"lr": LogUniform(1e-4, 1e-1)}, objective, "random", n_trials=20,
                    seed=0, data=(x_train, t_train))
    trials[0]["params"], trials[0]["score"]

Pruning (``prune=True``) is the median rule of Optuna's MedianPruner: at a
report of epoch e, once ``min_trials`` trials have completed, a trial whose
best score so far is below the median of the completed trials' scores at
epoch e is stopped (``report`` raises ``Pruned``; no pruning at epochs below
``warmup``). Method "tpe" uses Optuna's MedianPruner itself when it runs
serially; grid and random search, and tpe with n_jobs > 1, apply the same
rule to the trials completed when the trial started.

With ``n_jobs > 1`` trials run in that many processes, started with "spawn"
(no fork of a process holding Numba's and BLAS's threads), each with
1/n_jobs of Numba's threads. The objective is pickled to them, so it must
be a function defined at the top level of an importable module (not a
lambda, not a nested function; ``functools.partial`` of one is fine), and a
script calling ``search`` needs the usual ``if __name__ == "__main__":``
guard. ``data`` is sent once per process. Grid and random search give the
same trials as serially (their points are drawn before any trial runs) as
long as nothing is pruned; pruning, and tpe's proposals, depend on which
trials finished first.
"""
import concurrent.futures as cf
import math
import multiprocessing
import numbers
import pickle
import time

import numpy as np

from cdl._checks import check_int
from cdl.tune.space import check_space, grid_points, random_points

METHODS = ("grid", "random", "tpe")
_STATE_ORDER = {"complete": 0, "pruned": 1, "failed": 2}


class Pruned(Exception):
    """Raised by ``report`` to stop a trial that the pruning rule judged hopeless."""


def split_validation(x, t, fraction=0.2, seed=None):
    """((x_train, t_train), (x_val, t_val)): a validation split carved from training data x, t.

    A random ``fraction`` of the samples (reproducible by seed) goes to
    validation, stratified by class when t holds integer labels (each class
    keeps its share). Both parts keep the samples' original order. Give it the
    training part only: the test set is for the final number, never for
    choosing hyperparameters.
    """
    t = np.asarray(t)
    if len(x) != len(t):
        raise ValueError(f"split_validation: {len(t)} targets for {len(x)} samples")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) \
            or not 0 < fraction < 1:
        raise ValueError(f"split_validation: fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    if t.ndim == 1 and t.dtype.kind in "iub":
        val = [members[:int(round(fraction * len(members)))]
               for members in (rng.permutation(np.flatnonzero(t == c)) for c in np.unique(t))]
        val = np.concatenate(val)
    else:
        val = rng.permutation(len(t))[:int(round(fraction * len(t)))]
    if len(val) == 0 or len(val) == len(t):
        raise ValueError(f"split_validation: fraction {fraction} of {len(t)} samples leaves "
                         f"{len(val)} for validation and {len(t) - len(val)} for training")
    keep = np.ones(len(t), dtype=bool)
    keep[val] = False
    val = np.sort(val)
    train = np.flatnonzero(keep)
    return (x[train], t[train]), (x[val], t[val])


class _MedianRule:
    """Optuna's MedianPruner rule on the reports of the trials completed before this one.

    Picklable: it travels to the worker with its trial."""

    def __init__(self, completed, min_trials, warmup):
        self.completed = completed  # list of {epoch: score} of completed trials
        self.min_trials, self.warmup = min_trials, warmup

    def __call__(self, epoch, reports):
        if len(self.completed) < self.min_trials or epoch < self.warmup:
            return False
        seen = [v for v in reports.values() if not math.isnan(v)]
        if not seen:  # only NaN so far: hopeless, as for MedianPruner
            return True
        best = max(seen)
        others = [r[epoch] for r in self.completed if epoch in r and not math.isnan(r[epoch])]
        return bool(others) and best < float(np.median(others))


def _run_trial(objective, number, params, data, should_prune):
    """Run one trial; returns its record (never raises, except for KeyboardInterrupt)."""
    reports = {}
    pruned_at = []

    def report(epoch, score):
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
            raise ValueError(f"report: epoch must be an int, got {epoch!r}")
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            raise ValueError(f"report: score must be a number, got {score!r}")
        reports[int(epoch)] = float(score)
        if should_prune is not None and should_prune(int(epoch), reports):
            pruned_at.append(int(epoch))
            raise Pruned(f"trial {number} pruned at epoch {epoch}")

    start = time.perf_counter()
    score, error = None, None
    try:
        value = objective(params, report) if data is None else objective(params, report, data)
        state = "complete"
        try:
            score = float(value)
        except (TypeError, ValueError):
            state, error = "failed", f"the objective returned {value!r}, not a number"
        else:
            if not math.isfinite(score):
                state, error, score = "failed", f"the objective returned {score}", None
    except Pruned:
        state = "pruned"
    except Exception as e:  # a failed trial is recorded; the search goes on
        state, error = "failed", f"{type(e).__name__}: {e}"
    epochs = max(reports) if reports else 0
    if pruned_at:  # even if the objective swallowed Pruned
        state, error, epochs = "pruned", None, pruned_at[0]
    if state == "pruned":  # no score of its own; its reports say how far it got
        score = None
    return {"number": number, "params": params, "score": score, "state": state,
            "epochs": epochs, "seconds": time.perf_counter() - start,
            "reports": sorted((e, v) for e, v in reports.items() if e <= epochs),
            "error": error}


class _Points:
    """Grid or random search: points fixed before any trial runs."""

    live = False

    def __init__(self, points):
        self.points = points

    def __len__(self):
        return len(self.points)

    def ask(self, number):
        return None, self.points[number]

    def tell(self, token, record, replay=False):
        pass  # the points are fixed: nothing to learn from a result


# Worker side of n_jobs > 1: the data arrives once per process, through the initializer.
_worker_data = None


def _worker_init(data, threads):
    global _worker_data
    _worker_data = data
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _worker_trial(objective, number, params, has_data, rule):
    return _run_trial(objective, number, params, _worker_data if has_data else None, rule)


def search(space, objective, method="grid", n_trials=None, seed=None, *, data=None,
           validation=0.2, n_jobs=1, prune=True, min_trials=5, warmup=0, callback=None):
    """Search ``space`` for the params that maximize ``objective``; trials best first.

    space       dict name -> list of choices, ``Uniform(lo, hi)`` or ``LogUniform(lo, hi)``
    objective   ``objective(params, report) -> score`` to maximize, or with ``data``
                ``objective(params, report, data)``; ``report(epoch, score)`` after each
                epoch lets the search prune (it raises ``Pruned``: do not catch it)
    method      "grid" (every combination; lists only), "random" (independent draws) or
                "tpe" (Optuna's Tree-structured Parzen Estimator: ``pip install 'cdl[tune]'``)
    n_trials    trials to run; grid: None runs the whole grid, a number its first n_trials
    seed        makes the draws, tpe's proposals and the validation split reproducible
    data        (x, t) training data: ``validation`` of it (a fraction) is carved off by
                ``split_validation`` and the objective gets ``((x, t), (x_val, t_val))``.
                Pass the training part only, never the test set.
    n_jobs      processes running trials at once (see the module docstring)
    prune, min_trials, warmup   the median rule (module docstring; MedianPruner's
                n_startup_trials and n_warmup_steps)
    callback    ``callback(trial)`` in this process as each trial ends

    Each trial is a dict: "number" (order started, from 0), "params", "score" (the
    returned score; None for a pruned or failed trial), "state" ("complete", "pruned" or
    "failed"), "epochs" (last epoch reported), "seconds", "reports" ([(epoch, score),
    ...]) and "error" (the exception, for a failed trial). Sorted complete trials first,
    then pruned ones (by their last report), then failed ones, best first.
    """
    space = check_space(space)
    if method not in METHODS:
        raise ValueError(f"cdl.tune.search: method must be one of {METHODS}, got {method!r}")
    if not callable(objective):
        raise ValueError(f"cdl.tune.search: objective must be callable, got {objective!r}")
    if n_trials is not None:
        n_trials = check_int("cdl.tune.search", "n_trials", n_trials)
    elif method != "grid":
        raise ValueError(f"cdl.tune.search: method {method!r} needs n_trials")
    n_jobs = check_int("cdl.tune.search", "n_jobs", n_jobs)
    min_trials = check_int("cdl.tune.search", "min_trials", min_trials, minimum=0)
    warmup = check_int("cdl.tune.search", "warmup", warmup, minimum=0)
    if data is not None:
        x, t = data
        data = split_validation(x, t, validation, seed)

    if method == "grid":
        points = grid_points(space)
        proposer = _Points(points if n_trials is None else points[:n_trials])
    elif method == "random":
        proposer = _Points(random_points(space, n_trials, seed))
    else:
        from cdl.tune._tpe import TPE
        proposer = TPE(space, n_trials, seed, n_jobs, prune, min_trials, warmup)
    try:
        trials = (_serial if n_jobs == 1 else _parallel)(
            proposer, objective, data, n_jobs, prune, min_trials, warmup, callback)
    finally:
        if hasattr(proposer, "close"):
            proposer.close()
    return sorted(trials, key=_rank)


def _rank(trial):
    """Sort key: complete, pruned, failed; within each the best score (a pruned trial's
    last report) first, then the order started."""
    score = trial["score"]
    if score is None and trial["reports"] and not math.isnan(trial["reports"][-1][1]):
        score = trial["reports"][-1][1]
    return (_STATE_ORDER[trial["state"]], -score if score is not None else 0.0,
            trial["number"])


def _rule(prune, done, min_trials, warmup):
    if not prune:
        return None
    completed = [dict(r["reports"]) for r in done if r["state"] == "complete"]
    return _MedianRule(completed, min_trials, warmup)


def _serial(proposer, objective, data, n_jobs, prune, min_trials, warmup, callback):
    done = []
    for number in range(len(proposer)):
        token, params = proposer.ask(number)
        rule = proposer.rule_for(token) if proposer.live else _rule(prune, done, min_trials, warmup)
        record = _run_trial(objective, number, params, data, rule)
        proposer.tell(token, record)
        done.append(record)
        if callback is not None:
            callback(record)
    return done


def _parallel(proposer, objective, data, n_jobs, prune, min_trials, warmup, callback):
    try:
        pickle.dumps(objective)
    except Exception as e:
        raise ValueError(f"cdl.tune.search: n_jobs > 1 runs the objective in other processes, "
                         f"so it must be picklable: a function defined at the top level of a "
                         f"module, not a lambda or a nested function (pickle: {e})") from None
    import numba
    threads = max(1, numba.config.NUMBA_NUM_THREADS // n_jobs)
    done, running, number = [], {}, 0
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_worker_init,
                                initargs=(data, threads)) as pool:
        try:
            while running or number < len(proposer):
                while len(running) < n_jobs and number < len(proposer):
                    token, params = proposer.ask(number)
                    future = pool.submit(_worker_trial, objective, number, params,
                                         data is not None, _rule(prune, done, min_trials, warmup))
                    running[future] = token
                    number += 1
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                results = []
                for future in finished:
                    try:
                        results.append((future.result(), running.pop(future)))
                    except cf.process.BrokenProcessPool as e:
                        raise RuntimeError(f"cdl.tune.search: a worker process died ({e}); "
                                           f"a crash or running out of memory?") from None
                for record, token in sorted(results, key=lambda rt: rt[0]["number"]):
                    proposer.tell(token, record, replay=True)
                    done.append(record)
                    if callback is not None:
                        callback(record)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return done
