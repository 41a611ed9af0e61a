"""The search behind ``cdl tune``: learning rate and weight decay of a built-in model.

Each trial trains as ``cdl train`` does (Adam, cosine decay to 1 % of the
learning rate over the epochs, batch 32, weights and shuffling from the seed)
with an L2 ``WeightDecay`` on the model, on the training part of the data
less a validation split, and reports validation accuracy after every epoch.
The test part of the data set is never loaded into the search.
"""
import functools
import math

import numpy as np

from cdl.tune.space import LogUniform

# Ranges in the spirit of the book's chapter 6 (there lr in 1e-6..1e-2 for SGD and weight
# decay in 1e-8..1e-4); Adam's useful learning rates sit higher.
SPACE = {"lr": LogUniform(1e-4, 3e-2), "weight_decay": LogUniform(1e-8, 1e-3)}


def grid_space(n_trials):
    """A log-spaced grid of at most n_trials points over SPACE: k lr values x m weight decays."""
    k = math.ceil(math.sqrt(n_trials))
    m = max(1, n_trials // k)
    return {"lr": SPACE["lr"].grid(k), "weight_decay": SPACE["weight_decay"].grid(m)}


def train_model(params, report, data, *, model, epochs, batch_size=32, seed=0):
    """Validation accuracy of MODELS[model] trained with params["lr"] and
    params["weight_decay"] on data = ((x, t), (x_val, t_val)); report(epoch, score) gets
    it each epoch. Adam, a cosine schedule over epochs, batches of batch_size; seed
    fixes the weights and the batch order."""
    from cdl import optim
    from cdl.models import MODELS
    from cdl.callbacks import Callback
    from cdl.train import Trainer

    class Report(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            report(epoch, logs["val_acc"])  # may raise cdl.tune.Pruned: stops fit

    (x, t), (xv, tv) = data
    net = MODELS[model](input_shape=x.shape[1:], num_classes=int(max(t.max(), tv.max())) + 1,
                        rng=np.random.default_rng(seed))
    net.weight_decay = optim.WeightDecay(l2=params["weight_decay"])
    opt = optim.Adam(lr=params["lr"])
    trainer = Trainer(net, opt, batch_size=batch_size, epochs=epochs, seed=seed,
                      callbacks=[optim.CosineLR(total=epochs, lr_min=opt.lr * 0.01), Report()],
                      eval_samples=500, verbose=False, progress=False)
    history = trainer.fit(x, t, validation_data=(xv, tv))
    if trainer.interrupted:
        raise KeyboardInterrupt
    return history["val_acc"][-1]


def objective(model, epochs, batch_size=32, seed=0):
    """``train_model`` with the training settings (model, epochs, batch_size, seed) bound:
    picklable, for n_jobs > 1."""
    return functools.partial(train_model, model=model, epochs=epochs, batch_size=batch_size,
                             seed=seed)


def score_text(trial):
    """A trial's score as text: "0.9712", "(0.4123)" for a pruned trial's last report, "-"."""
    if trial["score"] is not None:
        return f"{trial['score']:.4f}"
    return f"({trial['reports'][-1][1]:.4f})" if trial["reports"] else "-"


def table(trials, score_name="val_acc"):
    """The trials as text lines, one per trial, in the order given (best first); a pruned
    trial shows its last report in parentheses. score_name heads the score column."""
    lines = [f"{'rank':>4}  {'trial':>5}  {'lr':>9}  {'weight_decay':>12}  {score_name:>8}  "
             f"{'epochs':>6}  {'seconds':>7}  state"]
    for rank, trial in enumerate(trials, 1):
        p = trial["params"]
        score = score_text(trial)
        state = trial["state"] + (f" ({trial['error']})" if trial["error"] else "")
        lines.append(f"{rank:>4}  {trial['number'] + 1:>5}  {p['lr']:>9.3g}  "
                     f"{p['weight_decay']:>12.3g}  {score:>8}  {trial['epochs']:>6}  "
                     f"{trial['seconds']:>7.1f}  {state}")
    return lines
