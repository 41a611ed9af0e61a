"""Overfitting and what regularization does about it (the book's ch. 6 experiment).

    python examples/overfitting.py [--data fashion|digits] [--epochs 200] [--quick]

A 7-layer MLP (six hidden layers of 100 ReLU units) trained with plain SGD
on only 300 training images, five ways: no regularization, L2 weight decay
(0.05), L1 weight decay (0.003), Dropout (0.3 after every hidden layer), and
Dropout (0.2) + L1 (0.001). Prints the final train and test
accuracy of each and saves the curves to examples/out/overfitting.png
(matplotlib, when installed). Without regularization the training set is
memorised (train accuracy ~100 %) while test accuracy stalls far below; the
regularized runs trade a little training accuracy for a smaller gap.
"""
import argparse
import os
import time

import numpy as np

import cdl
from cdl import layers as L
from cdl.data import fashion_mnist_available, load_digits, load_fashion_mnist
from cdl.optim import SGD, WeightDecay

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def load(name, n_train, n_test):
    if name == "fashion":
        (x, t), (xt, tt) = load_fashion_mnist(flatten=True)
    else:
        (x, t), (xt, tt) = load_digits(flatten=True)
    return (x[:n_train], t[:n_train]), (xt[:n_test], tt[:n_test])


def mlp(d_in, dropout, weight_decay, seed):
    """Six hidden Affine+ReLU layers of 100 (+ Dropout), then Affine to 10 classes."""
    layers, d = [], d_in
    rng = np.random.default_rng(seed)
    for _ in range(6):
        layers += [L.Affine(d, 100, rng=rng), L.ReLU()]
        if dropout:
            layers.append(L.Dropout(dropout, rng=rng))
        d = 100
    layers.append(L.Affine(d, 10, rng=rng))
    return cdl.Sequential(layers, loss=L.SoftmaxCrossEntropy(), weight_decay=weight_decay)


CONFIGS = {  # name: (dropout ratio, weight decay)
    "none": (0.0, None),
    "L2 (0.05)": (0.0, WeightDecay(l2=0.05)),
    "L1 (0.003)": (0.0, WeightDecay(l1=0.003)),
    "Dropout (0.3)": (0.3, None),
    "Dropout + L1": (0.2, WeightDecay(l1=0.001)),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["fashion", "digits"],
                   default="fashion" if fashion_mnist_available() else "digits")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="30 epochs, a smaller test set")
    args = p.parse_args(argv)
    epochs = 30 if args.quick else args.epochs
    (x, t), (xt, tt) = load(args.data, 300, 1000 if args.quick else 2000)
    print(f"{args.data}: {len(x)} training images, {len(xt)} test images, {epochs} epochs, "
          f"SGD lr={args.lr}, batch 100")
    results = {}
    for name, (dropout, decay) in CONFIGS.items():
        net = mlp(x.shape[1], dropout, decay, args.seed)
        cdl.seed(args.seed)  # the dropout masks of every run start from the same state
        start = time.perf_counter()
        hist = cdl.Trainer(net, SGD(lr=args.lr), batch_size=100, epochs=epochs, seed=args.seed,
                           verbose=False).fit(x, t, validation_data=(xt, tt))
        results[name] = hist
        tr, te = hist["train_acc"][-1], hist["val_acc"][-1]
        print(f"  {name:<14} train {tr:6.1%}  test {te:6.1%}  gap {tr - te:6.1%}  "
              f"({time.perf_counter() - start:.1f}s)")
    print(f"\n{'config':<15}{'train acc':>10}{'test acc':>10}{'gap':>8}")
    for name, hist in results.items():
        tr, te = hist["train_acc"][-1], hist["val_acc"][-1]
        print(f"{name:<15}{tr:>10.1%}{te:>10.1%}{tr - te:>8.1%}")
    plot(results, args.data)
    return results


def plot(results, data):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.4), sharey=True)
    for ax, (name, hist) in zip(axes, results.items()):
        ax.plot(hist["epoch"], hist["train_acc"], label="train")
        ax.plot(hist["epoch"], hist["val_acc"], label="test")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="lower right")
    fig.suptitle(f"7-layer MLP on 300 {data} images")
    fig.tight_layout()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "overfitting.png")
    fig.savefig(path, dpi=110)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
