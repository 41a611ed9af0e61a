"""Batch normalization makes training insensitive to the weight-init scale (section 6.3).

    python examples/03_batchnorm.py [--epochs 20] [--quick] [--out DIR]

A 6-layer ReLU MLP (five hidden layers of 100) trained with plain SGD on
1,000 images of Fashion-MNIST (the 8x8 digits shipped with cdl when it is
not installed), once without and once with a BatchNorm after every hidden
Affine, for weights initialised N(0, s^2) at several scales s (the book's
figure 6-19). Prints the final training accuracy of each pair and saves the
curves. Without BatchNorm only a narrow band of scales trains at all (too
small: activations and gradients vanish; too large: they explode); with it
every scale learns, the tiniest more slowly (the output Affine has no
BatchNorm after it, so its tiny weights still shrink the gradient reaching
the layers below).
"""
import time
import warnings

import numpy as np

import _common
import cdl
from cdl import viz
from cdl.optim import SGD


def _fmt(acc):
    return "diverged" if np.isnan(acc) else f"{acc:.1%}"


def main(argv=None):
    p = _common.parser(__doc__, "4 scales, 5 epochs on 500 images")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.01)
    args = p.parse_args(argv)
    name, (x, t), _ = _common.load(flatten=True, quick=args.quick)
    n = 500 if args.quick else 1000
    x, t = x[:n], t[:n]
    scales = np.logspace(0, -3.5, 4 if args.quick else 8)
    epochs = 5 if args.quick else args.epochs
    print(f"{name}: {len(x)} training images, {epochs} epochs, SGD lr={args.lr}, batch 100")
    curves = {}
    for s in scales:
        for bn in (False, True):
            net = _common.mlp(x.shape[1], 10, 5, args.seed, init=cdl.init.normal(s),
                              batchnorm=bn)
            trainer = cdl.Trainer(net, SGD(lr=args.lr), batch_size=100, epochs=epochs,
                                  seed=args.seed, verbose=False)
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():  # divergence is reported
                    # (np.errstate would not reach the kernels' worker threads)
                    warnings.simplefilter("ignore", RuntimeWarning)
                    curves[(s, bn)] = trainer.fit(x, t)["train_acc"]
                note = ""
            except FloatingPointError:  # the loss overflowed: this run does not train at all
                curves[(s, bn)] = trainer.history.get("train_acc", []) + [float("nan")]
                note = f"diverged in epoch {trainer.epoch}"
            print(f"  init std {s:8.5f}  {'BatchNorm' if bn else 'plain':<9}  train acc "
                  f"{_fmt(curves[(s, bn)][-1]):>8}  {note} ({time.perf_counter() - start:.1f}s)")
    print()
    _common.table([(f"{s:.5f}", _fmt(curves[(s, False)][-1]), _fmt(curves[(s, True)][-1]))
                   for s in scales], ("init std", "plain", "BatchNorm"))
    panels = {}
    for s in scales:  # a diverged run has no curve: its panel says so
        diverged = [label for label, bn in (("plain", False), ("BatchNorm", True))
                    if np.isnan(curves[(s, bn)][-1])]
        title = f"init std {s:.2g}" + "".join(f", {d} diverged" for d in diverged)
        panels[title] = {"BatchNorm": curves[(s, True)], "plain": curves[(s, False)]}
    _common.figure(args.out, "03_batchnorm.png", viz.curves, panels, xlabel="epoch",
                   ylabel="train accuracy", ylim=(0, 1.02), max_cols=4,
                   title=f"6-layer MLP on {len(x)} {name} images, with and without BatchNorm")
    return curves


if __name__ == "__main__":
    main()
