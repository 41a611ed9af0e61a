"""Transfer learning vs fine-tuning vs training from scratch, with few labels.

    python examples/08_transfer.py [--epochs 4] [--shots 50] [--quick] [--out DIR]

A convolutional body is pretrained on classes 0-4 of Fashion-MNIST (digits
0-4 of the 8x8 digits shipped with cdl when it is not installed). The task
is then classes 5-9 with only --shots labelled images per class. Three ways
to learn it, each from the same 5 x shots images, each evaluated on every
test image of classes 5-9:

  (a) frozen body + new head: the pretrained body with ``trainable = False``
      (its BatchNorm keeps its statistics), only a new Affine head trains
  (b) fine-tuning: the pretrained body and a new head train together, the
      body at a tenth of the head's learning rate (``lr_multipliers``)
  (c) from scratch: the same architecture, freshly initialised

Prints the three test accuracies; with few labels, (a) and (b) should beat
(c) by a wide margin. Saves the learning curves of the three runs.
"""
import time

import numpy as np

import _common
import cdl
from cdl import layers as L, optim, viz


def body_and_head(input_shape, classes, rng):
    """conv-BN-ReLU-pool x 2, then a hidden Affine: the body; an Affine head."""
    C, H, W = input_shape
    h, w = H // 4, W // 4
    return cdl.Sequential([
        L.Conv2D(C, 16, 3, pad=1, rng=rng), L.BatchNorm(16), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(16, 32, 3, pad=1, rng=rng), L.BatchNorm(32), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Affine(32 * h * w, 64, rng=rng), L.ReLU(),
        L.Affine(64, classes, rng=rng),
    ], loss=L.SoftmaxCrossEntropy(), input_shape=input_shape)


def few_shots(x, t, shots, rng):
    """shots images of each class present in t, their labels shifted to start at 0."""
    idx = np.concatenate([rng.choice(np.flatnonzero(t == c), shots, replace=False)
                          for c in np.unique(t)])
    return x[idx], t[idx] - t.min()


def fit(net, opt, x, t, xv, tv, epochs, seed, batch_size):
    trainer = cdl.Trainer(net, opt, batch_size=batch_size, epochs=epochs, seed=seed,
                          verbose=False, progress=False)
    return trainer.fit(x, t, validation_data=(xv, tv))


def main(argv=None):
    p = _common.parser(__doc__, "5 epochs of pretraining on the digits, 10 shots")
    p.add_argument("--epochs", type=int, default=4, help="pretraining epochs")
    p.add_argument("--shots", type=int, default=50, help="labelled images per new class")
    args = p.parse_args(argv)
    name, (x, t), (xt, tt) = _common.load(quick=args.quick)
    rng = np.random.default_rng(args.seed)
    old, new, new_test = t < 5, t >= 5, tt >= 5
    shots = 10 if args.quick else args.shots
    pre_epochs = 5 if args.quick else args.epochs
    tune_epochs = 20 if args.quick else 30
    lr = 5e-3  # the same for the three; a new head needs a brisk rate to move in few steps
    xs, ts = few_shots(x[new], t[new], shots, rng)
    xv, tv = xt[new_test], tt[new_test] - 5

    start = time.perf_counter()
    pretrained = body_and_head(x.shape[1:], 5, np.random.default_rng(args.seed))
    fit(pretrained, optim.Adam(lr=1e-3), x[old], t[old], xt[tt < 5], tt[tt < 5], pre_epochs,
        args.seed, 100)
    base_acc = pretrained.accuracy(xt[tt < 5], tt[tt < 5])
    print(f"{name}: pretrained on classes 0-4 ({old.sum()} images, {pre_epochs} epochs): "
          f"{base_acc:.1%} on their test images, {time.perf_counter() - start:.0f}s")
    weights = pretrained.state()

    def pretrained_copy():
        net = body_and_head(x.shape[1:], 5, np.random.default_rng(args.seed))
        net.load_state(weights)
        net.replace_head(L.Affine(64, 5, rng=np.random.default_rng(args.seed + 1)))
        return net

    histories, rows = {}, []
    frozen = pretrained_copy()
    for layer in frozen.layers[:-1]:
        layer.trainable = False
    histories["(a) frozen body, new head"] = fit(
        frozen, optim.Adam(lr=lr), xs, ts, xv, tv, tune_epochs, args.seed, 25)
    tuned = pretrained_copy()
    histories["(b) fine-tuned, body lr x0.1"] = fit(
        tuned, optim.Adam(lr=lr, lr_multipliers={"": 0.1, str(len(tuned.layers) - 1): 1.0}),
        xs, ts, xv, tv, tune_epochs, args.seed, 25)
    scratch = body_and_head(x.shape[1:], 5, np.random.default_rng(args.seed + 2))
    histories["(c) from scratch"] = fit(
        scratch, optim.Adam(lr=lr), xs, ts, xv, tv, tune_epochs, args.seed, 25)
    for label, h in histories.items():
        rows.append((label, f"{h['train_acc'][-1]:.1%}", f"{h['val_acc'][-1]:.1%}"))
    print(f"classes 5-9 from {len(xs)} labelled images ({shots} per class), {tune_epochs} "
          f"epochs of Adam lr {lr:g} (batch 25), tested on {len(xv)} images:")
    _common.table(rows, ("method", "train acc", "test acc"))
    _common.figure(args.out, "08_transfer_curves.png", viz.learning_curves, histories,
                   title=f"{name}: classes 5-9 from {shots} images per class")
    return histories


if __name__ == "__main__":
    main()
