"""Binarized vs float networks: accuracy, model bytes, inference speed (BinaryMLP / BinaryConvNet).

    python examples/07_binary.py [--model mlp|cnn] [--epochs 10] [--hidden 1024] [--quick]
    python examples/07_binary.py --model cnn --epochs 8 --scale --limit 0

A binarized network (+-1 weights and activations, straight-through
gradients) and its float twin of the same shape, trained alike (Adam with a
cosine decay, batches of 100) on the first --limit images of Fashion-MNIST
(the 8x8 digits shipped with cdl when it is not installed); the test set is
evaluated after every epoch (reported, never used to pick an epoch). After
training the binary model is packed (``net.pack()``: 1-bit weights, XOR +
popcount products); the script checks that the packed model predicts
exactly as the float-simulated one and prints, for the three, test
accuracy, stored bytes and inference time on the test set (median of 3, in
this process). Saves both learning curves and writes everything to
OUT/07_binary_<model>.json.

The epoch times include the evaluation after each epoch (the test set is
predicted twice, for its loss and its accuracy, and the train accuracy once),
and the binary model's first epoch, trained first, also the loading of every
kernel it calls (their compilation when Numba's cache is empty): compare
later epochs. ``python bench/binary.py --train`` times steps
and epochs of both models side by side.
"""
import json
import os
import time

import numpy as np

import _common
import cdl
from cdl import optim, viz
from cdl.models import BinaryConvNet, BinaryMLP


def train(net, data, args, label):
    (x, t), (xt, tt) = data
    opt = optim.Adam(lr=args.lr)
    trainer = cdl.Trainer(net, opt, batch_size=args.batch_size, epochs=args.epochs,
                          seed=args.seed,
                          callbacks=[optim.CosineLR(total=args.epochs, lr_min=args.lr * 0.01)],
                          eval_samples=10000, verbose=False)

    class Report(cdl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            print(f"  {label} epoch {epoch:>2}/{args.epochs}  loss {logs['loss']:.4f}  "
                  f"train acc {logs['train_acc']:.4f}  test acc {logs['val_acc']:.4f}  "
                  f"{logs['time']:.1f}s", flush=True)

    trainer.callbacks.append(Report())
    return trainer.fit(x, t, validation_data=(xt, tt))


def seconds(predict, x, repeat=3):
    """Median wall time of predict(x) over repeat runs, after one warm-up (JIT)."""
    predict(x)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None):
    p = _common.parser(__doc__, "MLP of 3 x 128, 1 epoch on 500 images")
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=1024, help="MLP width / CNN hidden units")
    p.add_argument("--channels", type=int, nargs=2, default=[64, 128], help="CNN channels")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.0, help="MLP dropout after hidden layers")
    p.add_argument("--scale", action="store_true", help="XNOR-Net scaling in binary layers")
    p.add_argument("--limit", type=int, default=10000,
                   help="use only this many training images (0: all)")
    p.add_argument("--save", metavar="PATH", help="save the trained binary model (.npz)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.hidden, args.limit, args.channels = 1, 128, 500, [8, 16]

    cdl.seed(args.seed)
    name, (x, t), (xt, tt) = _common.load(quick=args.quick)
    if args.limit:
        x, t = x[:args.limit], t[:args.limit]
    shape = x.shape[1:]
    if args.model == "mlp":
        kw = dict(input_shape=shape, hidden=(args.hidden,) * 3, dropout=args.dropout)
        binary, twin = BinaryMLP(scale=args.scale, rng=args.seed, **kw), \
            BinaryMLP.float_twin(rng=args.seed, **kw)
    else:
        kw = dict(input_shape=shape, channels=tuple(args.channels), hidden=args.hidden)
        binary, twin = BinaryConvNet(scale=args.scale, rng=args.seed, **kw), \
            BinaryConvNet.float_twin(rng=args.seed, **kw)
    print(f"{name}: {len(x)} train / {len(xt)} test; {args.model}, {binary.num_params():,} "
          f"parameters, Adam lr {args.lr} cosine, batch {args.batch_size}, {args.epochs} "
          f"epochs", flush=True)

    histories = {"binary": train(binary, ((x, t), (xt, tt)), args, "binary")}
    histories["float"] = train(twin, ((x, t), (xt, tt)), args, "float ")
    if args.save:
        binary.save(args.save)
    packed = binary.pack()
    scores, simulated = packed.predict(xt, 1000), binary.predict(xt, 1000)
    differ = int((scores.argmax(1) != simulated.argmax(1)).sum())
    print(f"\n{packed}\npacked vs float-simulated binary: {differ} of {len(xt)} predictions "
          f"differ\n")
    models = {"float twin": (twin, 4 * twin.num_params()),
              "binary, float-simulated": (binary, packed.float_bytes),
              "binary, packed": (packed, packed.nbytes)}
    rows, result = [], {"data": name, "args": vars(args), "differing_predictions": differ}
    for label, (net, nbytes) in models.items():
        acc = net.accuracy(xt, tt)
        sec = seconds(lambda v: net.predict(v, 1000), xt)
        rows.append((label, f"{acc:.2%}", f"{nbytes:,}", f"{4 * twin.num_params() / nbytes:.1f}x",
                     f"{sec * 1e3:.1f}", f"{len(xt) / sec:,.0f}"))
        result[label] = {"test_acc": acc, "bytes": nbytes, "seconds": sec}
    _common.table(rows, ("model", "test acc", "bytes", "smaller", "ms", "images/s"))
    print(f"(inference on the {len(xt):,} test images in batches of 1000, median of 3)")
    result["history"] = {k: {m: [float(v) for v in vs] for m, vs in h.items()}
                         for k, h in histories.items()}
    _common.figure(args.out, f"07_binary_{args.model}.png", viz.learning_curves, histories,
                   title=f"binary vs float {args.model.upper()} on {name}", val_label="test")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"07_binary_{args.model}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
