"""Overfitting and its cures: L2 and L1 weight decay, Dropout, and both (section 6.4).

    python examples/04_overfitting.py [--epochs 200] [--quick] [--out DIR]

A 7-layer MLP (six hidden layers of 100 ReLU units) trained with plain SGD
on only 300 training images of Fashion-MNIST (the 8x8 digits shipped with
cdl when it is not installed), five ways: no regularization, L2 weight decay
(0.05), L1 weight decay (0.003), Dropout (0.3 after every hidden layer), and
Dropout (0.2) + L1 (0.001). Prints the final train and test accuracy of
each and saves the curves (the book's figures 6-21 to 6-23). Without
regularization the training set is memorised (train accuracy ~100 %) while
test accuracy stalls far below; the regularized runs trade a little
training accuracy for a smaller gap.
"""
import time

import _common
import cdl
from cdl import viz
from cdl.optim import SGD, WeightDecay


CONFIGS = {  # name: (dropout ratio, weight decay)
    "none": (0.0, None),
    "L2 (0.05)": (0.0, WeightDecay(l2=0.05)),
    "L1 (0.003)": (0.0, WeightDecay(l1=0.003)),
    "Dropout (0.3)": (0.3, None),
    "Dropout 0.2 + L1 0.001": (0.2, WeightDecay(l1=0.001)),
}


def main(argv=None):
    p = _common.parser(__doc__, "20 epochs, 500 test images")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args(argv)
    epochs = 20 if args.quick else args.epochs
    name, (x, t), (xt, tt) = _common.load(flatten=True, quick=args.quick)
    x, t = x[:300], t[:300]
    xt, tt = xt[:500 if args.quick else 2000], tt[:500 if args.quick else 2000]
    print(f"{name}: {len(x)} training images, {len(xt)} test images, {epochs} epochs, "
          f"SGD lr={args.lr}, batch 100")
    results = {}
    for config, (dropout, decay) in CONFIGS.items():
        net = _common.mlp(x.shape[1], 10, 6, args.seed, dropout=dropout, weight_decay=decay)
        start = time.perf_counter()
        hist = cdl.Trainer(net, SGD(lr=args.lr), batch_size=100, epochs=epochs, seed=args.seed,
                           verbose=False).fit(x, t, validation_data=(xt, tt))
        results[config] = hist
        print(f"  {config:<22} ({time.perf_counter() - start:.1f}s)")
    print()
    _common.table([(config, f"{h['train_acc'][-1]:.1%}", f"{h['val_acc'][-1]:.1%}",
                    f"{h['train_acc'][-1] - h['val_acc'][-1]:.1%}")
                   for config, h in results.items()], ("regularization", "train acc",
                                                       "test acc", "gap"))
    panels = {config: {"train": (h["epoch"], h["train_acc"]), "test": (h["epoch"], h["val_acc"])}
              for config, h in results.items()}
    _common.figure(args.out, "04_overfitting.png", viz.curves, panels, xlabel="epoch",
                   ylabel="accuracy", ylim=(0, 1.02), max_cols=3,
                   title=f"7-layer MLP on {len(x)} {name} images")
    return results


if __name__ == "__main__":
    main()
