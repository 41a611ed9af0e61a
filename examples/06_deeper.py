"""Deeper is better: SimpleConvNet vs DeepConvNet vs ResNet (the book's chapter 8).

    python examples/06_deeper.py [--epochs 8] [--limit 5000] [--quick] [--out DIR]

The three builders of cdl.models trained alike (Adam lr 1e-3 on a cosine,
batches of 100, the same seed) on Fashion-MNIST (its first --limit
training images; the 8x8 digits shipped with cdl when it is not installed)
and evaluated on the whole test set. Prints parameters, train and test
accuracy and seconds per epoch; saves the learning curves, the first-layer
filters of SimpleConvNet before and after training, and the confusion
matrix and misclassified test images of the model with the best test
accuracy.
"""
import time

import numpy as np

import _common
import cdl
from cdl import optim, viz
from cdl.models import DeepConvNet, ResNet, SimpleConvNet

MODELS = {"SimpleConvNet": SimpleConvNet, "DeepConvNet": DeepConvNet, "ResNet-8": ResNet}
FASHION = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def main(argv=None):
    p = _common.parser(__doc__, "1 epoch on 300 images")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--limit", type=int, default=5000, help="training images used")
    args = p.parse_args(argv)
    name, (x, t), (xt, tt) = _common.load(quick=args.quick)
    n, epochs = (300, 1) if args.quick else (args.limit, args.epochs)
    x, t = x[:n], t[:n]
    labels = FASHION if name == "Fashion-MNIST" else None
    print(f"{name}: {len(x)} train / {len(xt)} test images, Adam lr 1e-3 cosine, batch 100, "
          f"{epochs} epochs")
    histories, nets, rows = {}, {}, []
    for model_name, build in MODELS.items():
        net = build(input_shape=x.shape[1:], num_classes=10, rng=np.random.default_rng(args.seed))
        if model_name == "SimpleConvNet":
            w0 = net.layers[0].params["W"].copy()
        opt = optim.Adam(lr=1e-3)
        trainer = cdl.Trainer(net, opt, batch_size=100, epochs=epochs, seed=args.seed,
                              callbacks=[optim.CosineLR(total=epochs, lr_min=1e-5)],
                              eval_samples=5000, verbose=False)
        start = time.perf_counter()
        h = trainer.fit(x, t, validation_data=(xt, tt))
        seconds = time.perf_counter() - start
        histories[model_name], nets[model_name] = h, net
        rows.append((model_name, f"{net.num_params():,}", f"{h['train_acc'][-1]:.1%}",
                     f"{h['val_acc'][-1]:.1%}", f"{seconds / epochs:.1f}"))
        print(f"  {model_name}: {seconds:.0f}s", flush=True)
    print()
    _common.table(rows, ("model", "parameters", "train acc", "test acc", "s/epoch"))
    best = max(histories, key=lambda k: histories[k]["val_acc"][-1])
    _common.figure(args.out, "06_deeper_curves.png", viz.learning_curves, histories,
                   title=f"{name}, {len(x)} training images", val_label="test")
    _common.figure(args.out, "06_deeper_filters.png", viz.filters, nets["SimpleConvNet"],
                   before=w0, title="SimpleConvNet's first-layer filters (grey = 0)")
    _common.figure(args.out, "06_deeper_confusion.png", viz.confusion_matrix, nets[best], xt,
                   tt, labels=labels)
    _common.figure(args.out, "06_deeper_mistakes.png", viz.misclassified, nets[best], xt, tt,
                   labels=labels, max_images=16)
    print(f"(confusion matrix and mistakes: {best}, the best test accuracy)")
    return histories


if __name__ == "__main__":
    main()
