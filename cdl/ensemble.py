"""Model ensembles: averaged class probabilities, bagging on bootstrap samples, and stacking.

    members = [train_one(seed=i) for i in range(5)]
    ens = Ensemble(members)
    ens.accuracy(x_test, t_test)

    ens = bagging(lambda i: make_net(rng=i), lambda: cdl.optim.Adam(lr=1e-3),
                  x_train, t_train, n_models=5, seed=0, epochs=10)
    ens.oob_accuracy   # out-of-bag estimate, no held-out data spent

    st = stacking([mlp, convnet], lambda: cdl.optim.Adam(lr=1e-3), x_train, t_train,
                  folds=5, seed=0, epochs=10)
    st.accuracy(x_test, t_test)   # a meta-learner on the members' probabilities
"""
import numpy as np

from cdl.layers.activation import softmax
from cdl.predictor import Predictor, labels
from cdl.train import Trainer


class Ensemble(Predictor):
    """p(x) = 1/M sum_m softmax(f_m(x)): the members' class probabilities averaged.

    Members are models with ``predict(x, batch_size)`` returning class
    scores (N, K), e.g. Sequentials ending in an Affine layer; all must
    agree on K. Averaging probabilities rather than scores keeps one
    over-confident member from dominating (Hansen & Salamon 1990;
    Lakshminarayanan et al. 2017 average the same way). ``predict_proba`` is
    ``predict`` and ``accuracy`` its arg-max against the labels (``cdl.predictor``).
    """

    outputs = "probabilities"

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
        return _probabilities(self.models, x, batch_size)

    def predict(self, x, batch_size=None):
        """Averaged class probabilities (N, K), float64."""
        return self.member_probabilities(x, batch_size).mean(axis=0)

    def __repr__(self):
        return f"Ensemble({len(self.models)} members)"


def bagging(build_model, make_optimizer, x, t, n_models=5, seed=None, validation_data=None,
            **trainer_kwargs):
    """Train n_models members, each on its own bootstrap sample of (x, t) (Breiman 1996).

    build_model(i) returns a fresh model for member i (seed its weights with
    i for reproducibility); make_optimizer() a fresh optimizer (optimizers
    keep per-parameter state). Member i trains with ``Trainer(...,
    seed=seed + i, **trainer_kwargs)`` (verbose off unless asked) on N
    indices drawn with replacement from the N samples, validation_data going
    to each member's ``fit``. Returns an Ensemble
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
    want = labels(t)
    keep = ~seen_by_all
    return float((votes[keep].argmax(axis=1) == want[keep]).mean())


def _probabilities(models, x, batch_size):
    """(M, N, K) float64 softmax of every model's scores, shapes checked."""
    probs = []
    for i, m in enumerate(models):
        y = np.asarray(m.predict(x, batch_size))
        if y.ndim != 2:
            raise ValueError(f"Ensemble: member {i} returned shape {y.shape}, expected "
                             f"(N, classes) scores")
        if probs and y.shape != probs[0].shape:
            raise ValueError(f"Ensemble: member {i} returned shape {y.shape}, member 0 "
                             f"{probs[0].shape}")
        probs.append(softmax(y.astype(np.float64)))
    return np.stack(probs)


class Stacked(Ensemble):
    """p(x) = softmax(g([p_1(x), ..., p_M(x)])): a meta-learner g on the members' probabilities.

    Stacked generalization (Wolpert 1992; Breiman 1996, "Stacked regressions"):
    ``models`` are the members, ``meta`` a model whose ``predict`` maps the
    (N, M*K) float32 features, the members' class probabilities side by side
    (member 0's K columns first), to (N, K) scores. ``stacking`` builds one,
    training g on out-of-fold probabilities; it also sets ``oof`` (N, M, K, the
    probabilities g trained on), ``fold_of`` (N, the fold each training sample
    was held out in), ``histories`` (each member's fit on all the data) and
    ``meta_history``. predict, predict_proba and accuracy as in Ensemble.
    """

    def __init__(self, models, meta):
        super().__init__(models)
        if not callable(getattr(meta, "predict", None)):
            raise ValueError(f"Stacked: the meta-learner ({type(meta).__name__}) has no predict")
        self.meta = meta
        self.oof = None
        self.fold_of = None
        self.meta_history = None

    def features(self, x, batch_size=None):
        """(N, M*K) float32 input of the meta-learner: the members' probabilities."""
        return _features(self.member_probabilities(x, batch_size))

    def predict(self, x, batch_size=None):
        """The meta-learner's class probabilities (N, K), float64."""
        scores = np.asarray(self.meta.predict(self.features(x, batch_size), batch_size))
        return softmax(scores.astype(np.float64))

    def __repr__(self):
        return f"Stacked({len(self.models)} members, meta {type(self.meta).__name__})"


def _features(probs):
    """(M, N, K) probabilities -> (N, M*K) float32, member by member along a row."""
    M, N, K = probs.shape
    return np.ascontiguousarray(probs.transpose(1, 0, 2).reshape(N, M * K), dtype=np.float32)


def _stratified_folds(labels, folds, rng):
    """(N,) fold index of every sample: a shuffle, then each class dealt round-robin, so
    every fold holds about 1/folds of each class."""
    perm = rng.permutation(len(labels))
    order = perm[np.argsort(labels[perm], kind="stable")]
    fold_of = np.empty(len(labels), dtype=np.int64)
    fold_of[order] = np.arange(len(labels)) % folds
    return fold_of


def averaging_meta(n_members, n_classes, scale=10.0):
    """Softmax regression Sequential([Affine(M*K, K)]) starting as averaging: W = scale/M
    times K x K identities stacked M times, b = 0, so its first arg-max is the Ensemble's.

    M is n_members and K n_classes."""
    from cdl.layers import Affine, SoftmaxCrossEntropy
    from cdl.model import Sequential

    def init(shape, rng=None, dtype=np.float32):
        return np.tile(np.eye(n_classes), (n_members, 1)).astype(dtype) * (scale / n_members)

    return Sequential([Affine(n_members * n_classes, n_classes, init=init)],
                      loss=SoftmaxCrossEntropy())


def stacking(builders, make_optimizer, x, t, folds=5, seed=None, meta=None, meta_optimizer=None,
             meta_epochs=50, train_fn=None, **trainer_kwargs):
    """Train members and a meta-learner on their out-of-fold probabilities (stacking).

    builders: one callable per member (or one callable for one member);
    ``builder(i)`` returns a fresh model, i an int unique to each of its
    calls (seed its weights with it). The N samples are dealt into ``folds``
    stratified folds (``seed``); member m is trained ``folds`` times, each
    time on all folds but one, and its class probabilities on that held-out
    fold go into the meta-features, so no sample's features come from a
    model that saw it; then it is trained once more on all N samples: those
    fits are the members of the result.

    make_optimizer() (or a list, one per builder) gives a fresh optimizer
    for each fit; a fit is ``Trainer(model, make_optimizer(), seed=i,
    **trainer_kwargs).fit(x, t)`` (verbose off unless asked), or
    ``train_fn(model, x, t, i)`` when given (make_optimizer may then be None).

    meta: a fresh model for the (N, M*K) features, trained with a Trainer
    (``meta_optimizer``, default Adam(lr=0.01); ``meta_epochs``; the members'
    batch_size). Default: ``averaging_meta(M, K)``, softmax regression that
    starts as the averaging Ensemble. Returns a ``Stacked``.
    """
    if callable(builders):
        builders = [builders]
    builders = list(builders)
    if not builders or not all(callable(b) for b in builders):
        raise ValueError("stacking: builders must be a non-empty list of callables "
                         "builder(i) -> model")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"stacking: folds must be an int >= 2, got {folds!r}")
    t = np.asarray(t)
    if len(x) != len(t) or len(x) == 0:
        raise ValueError(f"stacking: {len(t)} targets for {len(x)} samples")
    if folds > len(x):
        raise ValueError(f"stacking: {folds} folds for {len(x)} samples")
    optimizers = (list(make_optimizer) if isinstance(make_optimizer, (list, tuple))
                  else [make_optimizer] * len(builders))
    if len(optimizers) != len(builders):
        raise ValueError(f"stacking: {len(optimizers)} optimizer factories for "
                         f"{len(builders)} builders")
    if train_fn is None and not all(callable(f) for f in optimizers):
        raise ValueError("stacking: make_optimizer must be callable (or pass train_fn)")
    trainer_kwargs.setdefault("verbose", False)
    batch_size = trainer_kwargs.get("eval_batch_size", 1000)
    base = 0 if seed is None else int(seed)
    fold_of = _stratified_folds(labels(t), int(folds), np.random.default_rng(seed))

    def fit(model, m, xs, ts, i):
        if train_fn is not None:
            return train_fn(model, xs, ts, i)
        return Trainer(model, optimizers[m](), seed=i, **trainer_kwargs).fit(xs, ts)

    oof, models, histories = None, [], []
    for m, build in enumerate(builders):
        for k in range(folds):
            i = base + m * (folds + 1) + k
            held = fold_of == k
            model = build(i)
            fit(model, m, x[~held], t[~held], i)
            p = _probabilities([model], x[held], batch_size)[0]
            if oof is None:
                oof = np.empty((len(x), len(builders), p.shape[1]))
            if p.shape[1] != oof.shape[2]:
                raise ValueError(f"stacking: member {m} gives {p.shape[1]} classes, member 0 "
                                 f"{oof.shape[2]}")
            oof[held, m] = p
        model = build(base + m * (folds + 1) + folds)
        histories.append(fit(model, m, x, t, base + m * (folds + 1) + folds))
        models.append(model)
    if meta is None:
        meta = averaging_meta(len(builders), oof.shape[2])
    if meta_optimizer is None:
        from cdl.optim import Adam
        meta_optimizer = Adam(lr=0.01)
    meta_trainer = Trainer(meta, meta_optimizer, batch_size=trainer_kwargs.get("batch_size", 100),
                           epochs=meta_epochs, seed=base, verbose=trainer_kwargs["verbose"])
    st = Stacked(models, meta)
    st.meta_history = meta_trainer.fit(_features(oof.transpose(1, 0, 2)), t)
    st.oof, st.fold_of, st.histories = oof, fold_of, histories
    return st


__all__ = ["Ensemble", "bagging", "Stacked", "stacking", "averaging_meta"]
