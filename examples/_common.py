"""What the numbered examples share: options, data, and saving a figure when matplotlib is there.

Not an example itself: ``python examples/NN_name.py`` puts this folder on sys.path.
"""
import argparse
import os

import numpy as np

import cdl
from cdl import data
from cdl import layers as L

HERE = os.path.dirname(os.path.abspath(__file__))


def parser(doc, quick_help):
    """argparse with the options every example takes: --quick, --out DIR, --seed."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"a few seconds on the 8x8 digits: {quick_help}")
    p.add_argument("--out", default=os.path.join(HERE, "out"),
                   help="folder for the figures (default: examples/out)")
    p.add_argument("--seed", type=int, default=0)
    return p


def load(flatten=False, quick=False):
    """(name, (x, t), (x_test, t_test)): Fashion-MNIST when installed, else (and always
    with quick, which must take seconds whatever is installed) the 8x8 digits shipped
    with cdl."""
    if data.fashion_mnist_available() and not quick:
        return ("Fashion-MNIST", *data.load_fashion_mnist(flatten=flatten))
    return ("digits 8x8", *data.load_digits(flatten=flatten))


def mlp(d_in, n_out, depth, seed, init="he_normal", batchnorm=False, dropout=0.0,
        weight_decay=None):
    """The book's MultiLayerNet(Extend): depth hidden layers of 100, each Affine (+ BatchNorm)
    + ReLU (+ Dropout), then Affine to n_out, under softmax cross-entropy; every draw from
    default_rng(seed), layer by layer."""
    rng = np.random.default_rng(seed)
    layers, d = [], d_in
    for _ in range(depth):
        layers.append(L.Affine(d, 100, init=init, rng=rng))
        if batchnorm:
            layers.append(L.BatchNorm(100))
        layers.append(L.ReLU())
        if dropout:
            layers.append(L.Dropout(dropout, rng=rng))
        d = 100
    layers.append(L.Affine(d, n_out, init=init, rng=rng))
    return cdl.Sequential(layers, loss=L.SoftmaxCrossEntropy(), weight_decay=weight_decay)


def train_steps(net, opt, x, t, batches):
    """The book's training loop, one step per index array of batches (loss, backward,
    update); returns the losses."""
    losses = []
    for idx in batches:
        losses.append(net.loss(x[idx], t[idx]))
        net.backward(input_grad=False)  # the images need no gradient
        opt.update(net.params, net.grads)
    return losses


def figure(out, name, draw, *args, **kwargs):
    """Draw with a cdl.viz function into out/name; without matplotlib say so in one line.

    The PNG is then cut to 128 colours (Pillow comes with matplotlib): the figures
    committed under examples/figures stay a few tens of KB.
    """
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    try:
        draw(*args, path=path, **kwargs)
    except ImportError as e:  # cdl.viz's one-line install hint
        print(f"no figure {name}: {e}")
        return None
    try:
        from PIL import Image
        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=128)
        small.save(path, optimize=True)
    except ImportError:
        pass
    print(f"saved {path}")
    return path


def table(rows, header):
    """Print rows (tuples of cells) under header, columns right-aligned but the first."""
    cells = [tuple(map(str, header))] + [tuple(map(str, r)) for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    for k, r in enumerate(cells):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
