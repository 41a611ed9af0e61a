"""Model ensembles: averaged class probabilities, and bagging on bootstrap samples.

    members = [train_one(seed=i) for i in range(5)]
    ens = Ensemble(members)
    ens.accuracy(x_test, t_test)

    ens = bagging(lambda i: make_net(rng=i), lambda: cdl.optim.Adam(lr=1e-3),
                  x_train, t_train, n_models=5, seed=0, epochs=10)
    ens.oob_accuracy   # out-of-bag estimate, no held-out data spent
"""
import numpy as np

from cdl.layers.activation import softmax
from cdl.train import Trainer


class Ensemble:
    """p(x) = 1/M sum_m softmax(f_m(x)): the members' class probabilities averaged.

    Members are models with ``predict(x, batch_size)`` returning class
    scores (N, K), e.g. Sequentials ending in an Affine layer; all must
    agree on K. Averaging probabilities rather than scores keeps one
    over-confident member from dominating (Hansen & Salamon 1990;
    Lakshminarayanan et al. 2017 average the same way).
    """

    def __init__(self, models):
        models = list(models)
        if not models:
            raise ValueError("Ensemble: needs at least one model")
        for i, m in enumerate(models):
            if not callable(getattr(m, "predict", None)):
                raise ValueError(f"Ensemble: member {i} ({type(m).__name__}) has no predict")
        self.models = models
        self.histories = []
        self.samples = []
        self.oob_accuracy = None

    def __len__(self):
        return len(self.models)

    def member_probabilities(self, x, batch_size=None):
        """(M, N, K) softmax outputs of every member."""
        probs = []
        for i, m in enumerate(self.models):
            y = np.asarray(m.predict(x, batch_size))
            if y.ndim != 2:
                raise ValueError(f"Ensemble: member {i} returned shape {y.shape}, expected "
                                 f"(N, classes) scores")
            if probs and y.shape != probs[0].shape:
                raise ValueError(f"Ensemble: member {i} returned shape {y.shape}, member 0 "
                                 f"{probs[0].shape}")
            probs.append(softmax(y.astype(np.float64)))
        return np.stack(probs)

    def predict(self, x, batch_size=None):
        """Averaged class probabilities (N, K), float64."""
        return self.member_probabilities(x, batch_size).mean(axis=0)

    def accuracy(self, x, t, batch_size=1000):
        """Fraction of samples whose arg-max averaged probability is the label (t or one-hot)."""
        p = self.predict(x, batch_size)
        t = np.asarray(t)
        labels = t.argmax(axis=1) if t.ndim == 2 else t
        if len(labels) != len(p):
            raise ValueError(f"Ensemble.accuracy: {len(labels)} labels for {len(p)} samples")
        return float((p.argmax(axis=1) == labels).mean())

    def __repr__(self):
        return f"Ensemble({len(self.models)} members)"


def bagging(build_model, make_optimizer, x, t, n_models=5, seed=None, validation_data=None,
            **trainer_kwargs):
    """Train n_models members, each on its own bootstrap sample of (x, t) (Breiman 1996).

    build_model(i) returns a fresh model for member i (seed its weights with
    i for reproducibility); make_optimizer() a fresh optimizer (optimizers
    keep per-parameter state). Member i trains with ``Trainer(...,
    seed=seed + i, **trainer_kwargs)`` (verbose off unless asked) on N
    indices drawn with replacement from the N samples. Returns an Ensemble
    with ``samples`` (the index arrays), ``histories`` and
    ``oob_accuracy``: the accuracy on each sample of the members that never
    saw it, over the samples at least one member left out (about e^-M of
    them are in every bag; None when there are none).
    """
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)) or n_models < 1:
        raise ValueError(f"bagging: n_models must be a positive int, got {n_models!r}")
    t = np.asarray(t)
    if len(x) != len(t) or len(x) == 0:
        raise ValueError(f"bagging: {len(t)} targets for {len(x)} samples")
    rng = np.random.default_rng(seed)
    trainer_kwargs.setdefault("verbose", False)
    base = 0 if seed is None else int(seed)
    models, histories, samples = [], [], []
    for i in range(n_models):
        idx = rng.integers(0, len(x), len(x))
        model = build_model(i)
        trainer = Trainer(model, make_optimizer(), seed=base + i, **trainer_kwargs)
        histories.append(trainer.fit(x[idx], t[idx], validation_data=validation_data))
        models.append(model)
        samples.append(idx)
    ens = Ensemble(models)
    ens.histories, ens.samples = histories, samples
    ens.oob_accuracy = _oob_accuracy(ens, x, t, trainer_kwargs.get("eval_batch_size", 1000))
    return ens


def _oob_accuracy(ens, x, t, batch_size):
    probs = ens.member_probabilities(x, batch_size)
    out = np.ones((len(ens), len(x)), dtype=bool)
    for m, idx in enumerate(ens.samples):
        out[m, idx] = False
    seen_by_all = ~out.any(axis=0)
    if seen_by_all.all():
        return None
    votes = (probs * out[:, :, None]).sum(axis=0)
    labels = t.argmax(axis=1) if t.ndim == 2 else t
    keep = ~seen_by_all
    return float((votes[keep].argmax(axis=1) == labels[keep]).mean())


__all__ = ["Ensemble", "bagging"]
