"""Method "tpe" of cdl.tune.search: Optuna's TPE sampler and MedianPruner, through ask/tell.

Optuna is optional (``pip install 'cdl[tune]'``) and imported only here.
The study lives in the searching process: serially, ``report`` goes to the
Optuna trial and its MedianPruner decides; with n_jobs > 1 the parent asks
for each trial's params, the workers prune by the same median rule on the
trials completed so far (cdl.tune.runner._MedianRule), and the parent tells
Optuna the reports and the outcome.
"""
import warnings

from cdl.tune.space import Uniform


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("cdl.tune: method 'tpe' needs Optuna: pip install 'cdl[tune]' "
                          "(or pip install optuna)") from None
    return optuna


class TPE:
    """Proposes trials with Optuna's TPESampler; the runner's side of ask/tell."""

    def __init__(self, space, n_trials, seed, n_jobs, prune, min_trials, warmup):
        optuna = self.optuna = _import_optuna()
        self.space, self.n_trials = space, n_trials
        self.live = n_jobs == 1
        self._verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # restored by close()
        self.prune = prune
        with warnings.catch_warnings():  # constant_liar is "experimental" in Optuna 3-5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # constant liar: trials still running count as bad ones, so that parallel
            # workers are not all sent to the same spot
            sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=n_jobs > 1)
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=min_trials,
                                              n_warmup_steps=warmup)
                  if prune else optuna.pruners.NopPruner())
        self.study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
        D = optuna.distributions
        self.distributions = {
            name: (D.FloatDistribution(dim.lo, dim.hi, log=dim.log) if isinstance(dim, Uniform)
                   # choices by index: Optuna stores only None/bool/int/float/str
                   else D.CategoricalDistribution(tuple(range(len(dim)))))
            for name, dim in space.items()}

    def __len__(self):
        return self.n_trials

    def ask(self, number):
        trial = self.study.ask(self.distributions)
        params = {name: (float(trial.params[name]) if isinstance(dim, Uniform)
                         else dim[trial.params[name]])
                  for name, dim in self.space.items()}
        return trial, params

    def rule_for(self, trial):
        """The serial ``should_prune(epoch, reports)``: Optuna's trial decides."""
        def should_prune(epoch, reports):
            trial.report(reports[epoch], epoch)
            return self.prune and trial.should_prune()
        return should_prune

    def tell(self, trial, record, replay=False):
        TrialState = self.optuna.trial.TrialState
        if replay:  # reports made in a worker: give them to the study for later pruning
            for epoch, score in record["reports"]:
                trial.report(score, epoch)
        if record["state"] == "complete":
            self.study.tell(trial, record["score"])
        elif record["state"] == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)

    def close(self):
        self.optuna.logging.set_verbosity(self._verbosity)
