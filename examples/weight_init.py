"""How the initial weights shape a deep network's activations and its training.

    python examples/weight_init.py [--iters 2000] [--quick] [--no-plot] [--out examples/out]

Part 1 (the book's section 6.2): 1000 random inputs through 5 Affine layers
of 100 units, with sigmoid or ReLU after each, for weights drawn from
N(0, 1), N(0, 0.01^2), Xavier (the book's std 1/sqrt(m)) and He
(std sqrt(2/m)). Prints each layer's activation statistics and saves one
histogram per layer and setting (the classic figure).

Part 2: the same 5 x 100 ReLU network trained with SGD on Fashion-MNIST
(the 8x8 digits shipped with cdl when Fashion-MNIST is not installed), one
run per initialisation, all from the same mini-batches; prints the losses
and test accuracy and saves the loss curves.
"""
import argparse
import os
import time

import numpy as np

import cdl
from cdl import data, init, optim
from cdl import layers as L

INITS = {
    "normal(1)": init.normal(std=1.0),
    "normal(0.01)": init.normal(std=0.01),
    "xavier (1/sqrt m)": init.xavier_book(),
    "he (sqrt 2/m)": init.he_normal(),
}
ACTIVATIONS = {"sigmoid": L.Sigmoid, "relu": L.ReLU}


def activations(init_fn, activation, n_layers=5, units=100, n=1000, seed=0):
    """The outputs of each activation layer for random input x (n, units)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, units)).astype(np.float32)
    outs = []
    for _ in range(n_layers):
        x = L.Affine(units, units, init=init_fn, rng=rng).forward(x, train=False)
        x = ACTIVATIONS[activation]().forward(x, train=False)
        outs.append(x)
    return outs


def part1(plot, out):
    print("Part 1: activations of a 5 x 100 network on random input")
    print(f"{'init':<19} {'act':<8} " + "  ".join(f"layer {i + 1} mean/std" for i in range(5)))
    table = {}
    for act in ACTIVATIONS:
        for name, fn in INITS.items():
            outs = activations(fn, act)
            table[act, name] = outs
            print(f"{name:<19} {act:<8} " +
                  "  ".join(f"{a.mean():7.3f}/{a.std():<7.3f}" for a in outs))
    if not plot:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(table)
    fig, axes = plt.subplots(len(rows), 5, figsize=(15, 1.8 * len(rows)), sharey="row")
    for r, (act, name) in enumerate(rows):
        for i, a in enumerate(table[act, name]):
            ax = axes[r, i]
            # One fixed range per activation, as in the book, so a collapse toward 0 or an
            # explosion out of the range is visible; the std says by how much.
            ax.hist(a.ravel(), bins=30, range=(0, 1) if act == "sigmoid" else (0, 3),
                    color="tab:blue")
            ax.text(0.97, 0.9, f"std {a.std():.3g}", transform=ax.transAxes, ha="right",
                    fontsize=7)
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"layer {i + 1}")
            if i == 0:
                ax.set_ylabel(f"{act}\n{name}", fontsize=8)
    fig.suptitle("activations per layer (rows: activation, initialisation; ReLU range 0..3)")
    fig.tight_layout()
    path = os.path.join(out, "weight_init_activations.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def load_data():
    if data.fashion_mnist_available():
        (x, t), (xt, tt) = data.load_fashion_mnist(flatten=True)
        return "Fashion-MNIST", (x, t), (xt, tt)
    (x, t), (xt, tt) = data.load_digits(flatten=True)
    return "digits 8x8", (x, t), (xt, tt)


def net_for(init_fn, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in zip([n_in] + [100] * 4, [100] * 5):
        layers += [L.Affine(a, b, init=init_fn, rng=rng), L.ReLU()]
    layers.append(L.Affine(100, n_out, init=init_fn, rng=rng))
    return cdl.Sequential(layers, loss=L.SoftmaxCrossEntropy())


def part2(iters, batch, lr, plot, out):
    data_name, (x, t), (xt, tt) = load_data()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    print(f"\nPart 2: 5 x 100 ReLU network, SGD lr={lr}, batch {batch}, {iters} iterations "
          f"on {data_name} ({len(x)} train / {len(xt)} test)")
    order = np.random.default_rng(0).integers(0, len(x), (iters, batch))  # same batches for all
    curves = {}
    for name in ("normal(0.01)", "xavier (1/sqrt m)", "he (sqrt 2/m)"):
        net = net_for(INITS[name], x.shape[1], int(t.max()) + 1, seed=1)
        opt = optim.SGD(lr=lr)
        losses = []
        start = time.perf_counter()
        for idx in order:
            losses.append(net.loss(x[idx], t[idx]))
            net.backward()
            opt.update(net.params, net.grads)
        curves[name] = losses
        print(f"{name:<19} loss {np.mean(losses[:50]):.3f} (first 50) -> "
              f"{np.mean(losses[-50:]):.3f} (last 50), test accuracy "
              f"{net.accuracy(xt, tt):.3f}  ({time.perf_counter() - start:.1f}s)")
    if not plot:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, losses in curves.items():
        smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
        ax.plot(smooth, label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (moving average of 20)")
    ax.set_title(f"5 x 100 ReLU network on {data_name}, SGD lr={lr}")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out, "weight_init_training.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--quick", action="store_true", help="300 iterations")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for path in (part1(not args.no_plot, args.out),
                 part2(300 if args.quick else args.iters, args.batch_size, args.lr,
                       not args.no_plot, args.out)):
        if path:
            print(f"saved {path}")


if __name__ == "__main__":
    main()
