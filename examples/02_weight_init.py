"""How the initial weights shape a deep network's activations and its training (section 6.2).

    python examples/02_weight_init.py [--iters 2000] [--quick] [--out DIR]

Part 1: 1000 random inputs through 5 Affine layers of 100 units, with
sigmoid or ReLU after each, for weights drawn from N(0, 1), N(0, 0.01^2),
Xavier (the book's std 1/sqrt(m)) and He (std sqrt(2/m)). Prints each
layer's activation std and saves one histogram per layer and setting (the
book's figures 6-10 to 6-14): with std 1 sigmoid saturates at 0 and 1,
with 0.01 everything collapses to one value, Xavier keeps sigmoid spread
and He keeps ReLU spread layer after layer.

Part 2: the same 5 x 100 ReLU network trained with SGD on Fashion-MNIST
(the 8x8 digits shipped with cdl when it is not installed), one run per
initialisation (std 0.01, Xavier, He), all from the same mini-batches;
prints the losses and test accuracy and saves the loss curves (figure 6-15).
"""
import time

import numpy as np

import _common
import cdl
from cdl import init, optim, viz
from cdl import layers as L

INITS = {
    "std 1": init.normal(std=1.0),
    "std 0.01": init.normal(std=0.01),
    "Xavier": init.xavier_book(),
    "He": init.he_normal(),
}
# the book's rows: sigmoid with std 1, 0.01 and Xavier; ReLU with std 0.01, Xavier and He
ROWS = [("sigmoid", "std 1"), ("sigmoid", "std 0.01"), ("sigmoid", "Xavier"),
        ("ReLU", "std 0.01"), ("ReLU", "Xavier"), ("ReLU", "He")]
ACTIVATIONS = {"sigmoid": L.Sigmoid, "ReLU": L.ReLU}


def stack(init_fn, activation, seed, n_layers=5, units=100):
    """5 x (Affine(100, 100) + activation), no loss: only its activations are looked at."""
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(n_layers):
        layers += [L.Affine(units, units, init=init_fn, rng=rng), ACTIVATIONS[activation]()]
    return cdl.Sequential(layers)


def part1(args):
    x = np.random.default_rng(args.seed).standard_normal((1000, 100)).astype(np.float32)
    nets = {f"{act}, {name}": stack(INITS[name], act, args.seed) for act, name in ROWS}
    print("Part 1: std of each layer's activations, 5 x 100 network on 1000 random inputs")
    rows = []
    for label, net in nets.items():
        out, stds = x, []
        for layer in net.layers:
            out = layer.forward(out, train=False)
            if isinstance(layer, (L.Sigmoid, L.ReLU)):
                stds.append(f"{out.std():.3g}")
        rows.append((label, *stds))
    _common.table(rows, ("activation, init", *(f"layer {i + 1}" for i in range(5))))
    # the book's fixed ranges: a collapse to one value or a saturation shows at a glance
    ranges = {label: (0, 1) if label.startswith("sigmoid") else (0, 3) for label in nets}
    _common.figure(args.out, "02_weight_init_activations.png", viz.activation_histograms,
                   nets, x, range=ranges)


def part2(args, iters, batch=128, lr=0.01):
    data_name, (x, t), (xt, tt) = _common.load(flatten=True, quick=args.quick)
    print(f"\nPart 2: 5 x 100 ReLU network, SGD lr={lr}, batch {batch}, {iters} iterations "
          f"on {data_name} ({len(x)} train / {len(xt)} test)")
    order = np.random.default_rng(args.seed).integers(0, len(x), (iters, batch))
    curves, rows = {}, []
    k = max(1, iters // 40)
    for name in ("std 0.01", "Xavier", "He"):
        net = _common.mlp(x.shape[1], int(t.max()) + 1, 5, args.seed + 1, init=INITS[name])
        start = time.perf_counter()
        curves[name] = losses = _common.train_steps(net, optim.SGD(lr=lr), x, t, order)
        rows.append((name, f"{np.mean(losses[:k]):.3f}", f"{np.mean(losses[-k:]):.3f}",
                     f"{net.accuracy(xt, tt):.1%}", f"{time.perf_counter() - start:.1f}s"))
    _common.table(rows, ("init", f"loss, first {k}", f"last {k}", "test acc", "time"))
    smooth = max(1, min(20, iters // 10))
    _common.figure(args.out, "02_weight_init_training.png", viz.curves, curves,
                   xlabel="iteration", ylabel=f"training loss (mean of {smooth})",
                   smooth=smooth, title=f"5 x 100 ReLU network on {data_name}, SGD lr={lr}")


def main(argv=None):
    p = _common.parser(__doc__, "part 2 for 100 iterations")
    p.add_argument("--iters", type=int, default=2000)
    args = p.parse_args(argv)
    part1(args)
    part2(args, 100 if args.quick else args.iters)


if __name__ == "__main__":
    main()
