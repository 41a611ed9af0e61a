"""Batch normalization makes training insensitive to the weight-init scale (the book's ch. 6).

    python examples/batchnorm.py [--data fashion|digits] [--epochs 20] [--quick]

A 6-layer ReLU MLP (five hidden layers of 100) trained with plain SGD on
1,000 images, once without and once with a BatchNorm after every hidden
Affine, for weights initialised N(0, s^2) at several scales s. Prints the
final training accuracy of each pair and saves the curves to
examples/out/batchnorm.png (matplotlib, when installed). Without BatchNorm
only a narrow band of scales trains at all (too small: activations and
gradients vanish; too large: they explode); with it every scale learns, the
tiniest more slowly (the output Affine has no BatchNorm after it, so its
tiny weights still shrink the gradient reaching the layers below).
"""
import argparse
import os
import time

import numpy as np

import cdl
from cdl import layers as L
from cdl.data import fashion_mnist_available, load_digits, load_fashion_mnist
from cdl.optim import SGD

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def mlp(d_in, scale, batchnorm, seed):
    layers, d = [], d_in
    rng = np.random.default_rng(seed)
    for _ in range(5):
        layers.append(L.Affine(d, 100, init=cdl.init.normal(scale), rng=rng))
        if batchnorm:
            layers.append(L.BatchNorm(100))
        layers.append(L.ReLU())
        d = 100
    layers.append(L.Affine(d, 10, init=cdl.init.normal(scale), rng=rng))
    return cdl.Sequential(layers, loss=L.SoftmaxCrossEntropy())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["fashion", "digits"],
                   default="fashion" if fashion_mnist_available() else "digits")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="4 scales, 8 epochs")
    args = p.parse_args(argv)
    load = load_fashion_mnist if args.data == "fashion" else load_digits
    (x, t), _ = load(flatten=True)
    x, t = x[:1000], t[:1000]
    scales = np.logspace(0, -3.5, 4 if args.quick else 8)
    epochs = 8 if args.quick else args.epochs
    print(f"{args.data}: {len(x)} training images, {epochs} epochs, SGD lr={args.lr}, batch 100")
    curves = {}
    for s in scales:
        for bn in (False, True):
            net = mlp(x.shape[1], s, bn, args.seed)
            trainer = cdl.Trainer(net, SGD(lr=args.lr), batch_size=100, epochs=epochs,
                                  seed=args.seed, verbose=False)
            start = time.perf_counter()
            try:
                curves[(s, bn)] = trainer.fit(x, t)["train_acc"]
                note = ""
            except FloatingPointError:  # the loss overflowed: this run does not train at all
                curves[(s, bn)] = trainer.history.get("train_acc", []) + [float("nan")]
                note = f"diverged in epoch {trainer.epoch}"
            print(f"  init std {s:8.5f}  {'BatchNorm' if bn else 'plain':<9}  train acc "
                  f"{curves[(s, bn)][-1]:6.1%}  {note} ({time.perf_counter() - start:.1f}s)")
    print(f"\n{'init std':>10}{'plain':>10}{'BatchNorm':>11}")
    for s in scales:
        print(f"{s:>10.5f}{_fmt(curves[(s, False)][-1]):>10}{_fmt(curves[(s, True)][-1]):>11}")
    plot(curves, scales, args.data)
    return curves


def _fmt(acc):
    return "diverged" if np.isnan(acc) else f"{acc:.1%}"


def plot(curves, scales, data):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    cols = 4
    rows = -(-len(scales) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), sharey=True,
                             squeeze=False)
    for ax, s in zip(axes.flat, scales):
        ax.plot(range(1, len(curves[(s, True)]) + 1), curves[(s, True)], label="BatchNorm")
        ax.plot(range(1, len(curves[(s, False)]) + 1), curves[(s, False)], "--", label="plain")
        ax.set_title(f"init std {s:.4g}")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("epoch")
    for ax in axes.flat[len(scales):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("train accuracy")
    axes[0, 0].legend(loc="lower right")
    fig.suptitle(f"MLP on 1000 {data} images: with and without BatchNorm")
    fig.tight_layout()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "batchnorm.png")
    fig.savefig(path, dpi=110)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
