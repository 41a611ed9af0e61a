"""Hyperparameter search of learning rate and weight decay (section 6.5), with cdl.tune.search.

    python examples/05_search.py [--trials 60] [--epochs 40] [--method random] [--quick]

The book's experiment: a 7-layer MLP (six hidden layers of 100) trained
with SGD on 500 training images of Fashion-MNIST (the 8x8 digits shipped
with cdl when it is not installed); cdl.tune.search carves 20 % of them off
for validation and draws lr from 10^U(-4, 0) (the book: 10^U(-6, -2), which
with 8x8 digits and few epochs shows only the rising side of the band) and
the L2 weight decay from 10^U(-8, -4). Each trial reports its validation
accuracy every epoch, so the median rule prunes hopeless trials early. Prints the best trials, then
trains the best setting on all 500 images and reports its test accuracy
once (the test set never chose anything). Saves the trials' scores against
each hyperparameter: good learning rates form a band (too large ones
diverge: those trials fail), weight decay matters far less here.
"""
import time
import warnings

import _common
import cdl
from cdl import optim, tune, viz


def train(params, data, epochs, seed, report=None):
    """The trained net and its history; report(epoch, val_acc) each epoch when given."""
    (x, t), validation = data
    net = _common.mlp(x.shape[1], 10, 6, seed,
                      weight_decay=optim.WeightDecay(l2=params["weight_decay"]))
    callbacks = []
    if report is not None:
        class Report(cdl.Callback):
            def on_epoch_end(self, trainer, epoch, logs):
                report(epoch, logs["val_acc"])  # may raise tune.Pruned: the search stops it
        callbacks.append(Report())
    trainer = cdl.Trainer(net, optim.SGD(lr=params["lr"]), batch_size=100, epochs=epochs,
                          seed=seed, callbacks=callbacks, verbose=False, progress=False)
    with warnings.catch_warnings():  # a too-large lr may diverge
        # (np.errstate would not reach the kernels' worker threads)
        warnings.simplefilter("ignore", RuntimeWarning)
        history = trainer.fit(x, t, validation_data=validation)
    return net, history


def main(argv=None):
    p = _common.parser(__doc__, "8 trials of 4 epochs")
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--method", choices=tune.METHODS, default="random",
                   help="'tpe' needs optuna: pip install 'cdl[tune]'")
    args = p.parse_args(argv)
    n_trials, epochs = (8, 4) if args.quick else (args.trials, args.epochs)
    name, (x, t), (xt, tt) = _common.load(flatten=True, quick=args.quick)
    x, t = x[:500], t[:500]
    space = {"lr": tune.LogUniform(1e-4, 1.0), "weight_decay": tune.LogUniform(1e-8, 1e-4)}
    print(f"{name}: {n_trials} {args.method} trials of {epochs} epochs, 7-layer MLP, SGD, "
          f"on {len(x)} training images (20 % of them for validation)")

    def objective(params, report, data):
        net, history = train(params, data, epochs, args.seed, report)
        return history["val_acc"][-1]

    start = time.perf_counter()
    trials = tune.search(space, objective, method=args.method, n_trials=n_trials,
                         seed=args.seed, data=(x, t), min_trials=5, warmup=epochs // 4)
    states = [tr["state"] for tr in trials]
    print(f"({time.perf_counter() - start:.0f}s; {states.count('pruned')} trials pruned, "
          f"{states.count('failed')} failed)\n")
    rows = [(i + 1, f"{tr['params']['lr']:.2e}", f"{tr['params']['weight_decay']:.2e}",
             "-" if tr["score"] is None else f"{tr['score']:.1%}", tr["state"], tr["epochs"])
            for i, tr in enumerate(trials[:10])]
    _common.table(rows, ("rank", "lr", "weight decay", "val acc", "state", "epochs"))
    best = trials[0]["params"]
    net, _ = train(best, ((x, t), None), epochs, args.seed)
    print(f"\nbest setting trained on all {len(x)} images: test accuracy "
          f"{net.accuracy(xt, tt):.1%} on {len(xt)} test images")
    _common.figure(args.out, "05_search.png", viz.trials, trials)
    return trials


if __name__ == "__main__":
    main()
