"""Greedy layer-wise pretraining rescues a deep sigmoid net (Bengio et al. 2007).

    python examples/10_greedy_pretraining.py [--epochs 40] [--stage-epochs 3] [--seeds 3]
        [--lr 1] [--activation sigmoid] [--quick] [--out DIR]

An MLP with four hidden layers of 64 units (Sigmoid, Xavier-initialised
weights) on the 8x8 digits shipped with cdl, trained with plain SGD (lr 1,
batches of 32) for --epochs epochs in all, three ways: from scratch; greedily
pretrained with cdl.pretrain.greedy_pretrain (one hidden layer and a temporary
head, then a layer more and a fresh head, ..., --stage-epochs epochs each,
the lower layers training too) and then fine-tuned for the remaining epochs;
and the same with the lower layers frozen during each stage, as in Bengio et
al.'s greedy supervised variant. Prints test accuracy (mean over --seeds
seeds, and the worst) and seconds per run; saves the test accuracy per
epoch. From scratch the gradient reaching the lower sigmoid layers is so
small that the net stays at chance for all 40 epochs (at lr 0.1, 0.3 and 1
alike; lr 3 escapes after some 15); each pretraining stage trains a net
only one new layer deep, and fine-tuning starts from weights that already
separate the classes. With --activation tanh --lr 0.05 (zero-centred units,
the gradient survives) the net trains from scratch too: pretraining then
buys a point at most.
"""
import time

import numpy as np

import _common
import cdl
from cdl import layers as L
from cdl import viz
from cdl.optim import SGD
from cdl.pretrain import greedy_pretrain

ACTIVATIONS = {"sigmoid": L.Sigmoid, "tanh": L.Tanh}


def block(d_in, act):
    """One hidden layer's builder: Affine(d_in, 64) and the activation."""
    return lambda: [L.Affine(d_in, 64, init="xavier"), ACTIVATIONS[act]()]


def head(n):
    return L.Affine(n, 10, init="xavier")


def run(method, args, x, t, test, epochs, stage_epochs, seed):
    """(test accuracy per epoch, seconds) of one way of training."""
    lr, fit = args.lr, dict(batch_size=32, verbose=False)
    builders = [block(x.shape[1] if k == 0 else 64, args.activation) for k in range(4)]
    start = time.perf_counter()
    curve = []
    if method == "from scratch":
        with cdl.init.rng_scope(np.random.default_rng(seed)):
            net = cdl.Sequential([layer for b in builders for layer in b()] + [head(64)],
                                 loss=L.SoftmaxCrossEntropy())
        rest = epochs
    else:
        net = greedy_pretrain(builders, head, lambda: SGD(lr=lr), x, t,
                              epochs_per_stage=stage_epochs, seed=seed,
                              freeze_lower="frozen" in method, validation_data=test, **fit)
        curve = [a for h in net.pretrain_histories for a in h["val_acc"]]
        rest = epochs - len(curve)
    h = cdl.Trainer(net, SGD(lr=lr), epochs=rest, seed=seed, **fit).fit(x, t,
                                                                       validation_data=test)
    return curve + h["val_acc"], time.perf_counter() - start


def main(argv=None):
    p = _common.parser(__doc__, "10 epochs (4 stages of 1), one seed")
    p.add_argument("--epochs", type=int, default=40, help="epochs in all, pretraining included")
    p.add_argument("--stage-epochs", type=int, default=3, help="epochs per pretraining stage")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="sigmoid")
    args = p.parse_args(argv)
    (x, t), test = cdl.data.load_digits(flatten=True)
    epochs, stage_epochs, seeds = (10, 1, 1) if args.quick else \
        (args.epochs, args.stage_epochs, args.seeds)
    if epochs < 4 * stage_epochs:
        p.error(f"--epochs {epochs} leaves no fine-tuning after 4 stages of {stage_epochs}")
    print(f"digits 8x8: {len(x)} train / {len(test[0])} test images; 4 x 64 {args.activation}, "
          f"SGD lr {args.lr}, batch 32, {epochs} epochs in all, seeds "
          f"{args.seed}..{args.seed + seeds - 1}")
    run("from scratch", args, x[:64], t[:64], test, 1, 1, args.seed)  # compiles the kernels
    methods = ("from scratch", "greedy + fine-tune", "greedy frozen + fine-tune")
    rows, curves = [], {}
    for method in methods:
        accs, secs = [], []
        for s in range(args.seed, args.seed + seeds):
            curve, seconds = run(method, args, x, t, test, epochs, stage_epochs, s)
            accs.append(curve[-1])
            secs.append(seconds)
            curves.setdefault(method, curve)  # the first seed's curve
        pre = 0 if method == "from scratch" else 4 * stage_epochs
        rows.append((method, pre, epochs - pre, f"{np.mean(accs):.1%}", f"{min(accs):.1%}",
                     f"{np.mean(secs):.1f}"))
        print(f"  {method}: {np.mean(secs):.1f}s per run", flush=True)
    print()
    _common.table(rows, ("training", "pretrain epochs", "fine-tune epochs", "test acc",
                         "worst", "s/run"))
    _common.figure(args.out, "10_greedy_pretraining.png", viz.curves, curves, xlabel="epoch",
                   ylabel="test accuracy", ylim=(0, 1),
                   title=f"4 x 64 {args.activation}, seed {args.seed}; pretraining stages: "
                         f"{4 * stage_epochs} epochs")


if __name__ == "__main__":
    main()
