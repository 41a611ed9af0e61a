"""Train BinaryMLP / BinaryConvNet on Fashion-MNIST next to float twins of the same shape.

    python examples/binary_fmnist.py --model mlp [--epochs 20] [--hidden 2048] [--no-float]
    python examples/binary_fmnist.py --model cnn --epochs 8

Adam with a cosine learning-rate decay, batches of 100; the test set is
evaluated after every epoch (reported, never used to pick an epoch). After
training the binary model is packed (``net.pack()``): the script checks
that the packed model predicts exactly as the float-simulated one and
prints the stored bytes of both. Results go to examples/out/binary_<model>.json.
Falls back to the 8x8 digits shipped with cdl when Fashion-MNIST is not installed.
"""
import argparse
import json
import os
import time

import numpy as np

import cdl
from cdl import optim
from cdl.data import fashion_mnist_available, load_digits, load_fashion_mnist
from cdl.models import BinaryConvNet, BinaryMLP
from cdl.train import Trainer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def load(limit):
    if fashion_mnist_available():
        (x, t), (xt, tt) = load_fashion_mnist()
        name = "fashion-mnist"
    else:
        (x, t), (xt, tt) = load_digits()
        name = "digits-8x8"
    if limit:
        x, t = x[:limit], t[:limit]
    return name, (x, t), (xt, tt)


def train(net, data, args, label):
    (x, t), (xt, tt) = data
    opt = optim.Adam(lr=args.lr)
    trainer = Trainer(net, opt, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
                      callbacks=[optim.CosineLR(total=args.epochs, lr_min=args.lr * 0.01)],
                      eval_samples=10000, verbose=False)
    start = time.perf_counter()

    class Report(cdl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            print(f"  {label} epoch {epoch:>2}/{args.epochs}  loss {logs['loss']:.4f}  "
                  f"train acc {logs['train_acc']:.4f}  test acc {logs['val_acc']:.4f}  "
                  f"{logs['time']:.0f}s", flush=True)

    trainer.callbacks.append(Report())
    history = trainer.fit(x, t, validation_data=(xt, tt))
    return {"test_acc": history["val_acc"][-1], "best_test_acc_seen": max(history["val_acc"]),
            "epochs": args.epochs, "seconds": time.perf_counter() - start,
            "history": {k: [float(v) for v in vs] for k, vs in history.items()}}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden", type=int, default=2048, help="MLP width / CNN hidden units")
    p.add_argument("--channels", type=int, nargs=2, default=[64, 128], help="CNN channels")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.0, help="MLP dropout after hidden layers")
    p.add_argument("--scale", action="store_true", help="XNOR-Net scaling in binary layers")
    p.add_argument("--no-float", action="store_true", help="skip the float twin")
    p.add_argument("--limit", type=int, default=0, help="use only this many training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="PATH", help="save the trained binary model (.npz)")
    args = p.parse_args()

    cdl.seed(args.seed)
    name, train_data, test_data = load(args.limit)
    shape = train_data[0].shape[1:]
    if args.model == "mlp":
        kw = dict(input_shape=shape, hidden=(args.hidden,) * 3, dropout=args.dropout)
        binary, twin = BinaryMLP(scale=args.scale, rng=args.seed, **kw), \
            BinaryMLP.float_twin(rng=args.seed, **kw)
    else:
        kw = dict(input_shape=shape, channels=tuple(args.channels), hidden=args.hidden)
        binary, twin = BinaryConvNet(scale=args.scale, rng=args.seed, **kw), \
            BinaryConvNet.float_twin(rng=args.seed, **kw)
    print(f"{name}: {len(train_data[0])} train / {len(test_data[0])} test; {args.model}, "
          f"{binary.num_params():,} parameters, Adam lr {args.lr} cosine, batch "
          f"{args.batch_size}, {args.epochs} epochs", flush=True)

    result = {"data": name, "args": vars(args)}
    result["binary"] = train(binary, (train_data, test_data), args, "binary")
    if args.save:
        binary.save(args.save)
    packed = binary.pack()
    xt, tt = test_data
    scores, float_scores = packed.predict(xt, 1000), binary.predict(xt, 1000)
    differ = int((scores.argmax(1) != float_scores.argmax(1)).sum())
    same = differ == 0
    result["packed"] = {"test_acc": packed.accuracy(xt, tt), "same_predictions": same,
                        "differing_predictions": differ,
                        "max_score_difference": float(np.abs(scores - float_scores).max()),
                        "bytes": packed.nbytes, "float_bytes": packed.float_bytes}
    print(packed)
    print(f"binary test acc {result['binary']['test_acc']:.4f}; packed test acc "
          f"{result['packed']['test_acc']:.4f} ({differ} predictions differ); "
          f"{packed.nbytes:,} bytes packed vs {packed.float_bytes:,} float "
          f"({packed.float_bytes / packed.nbytes:.1f}x)", flush=True)
    if not args.no_float:
        result["float"] = train(twin, (train_data, test_data), args, "float ")
        print(f"float twin test acc {result['float']['test_acc']:.4f}", flush=True)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"binary_{args.model}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
