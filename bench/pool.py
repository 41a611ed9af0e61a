"""MaxPool2D / AvgPool2D forward + backward: cdl vs the book's NumPy code vs PyTorch CPU.

    python bench/pool.py [--repeat 10] [--warmup 2] [--threads 2] [--quick]

Contenders, interleaved in one process with the same thread count: cdl's
pooling layers, the book's Pooling layer (im2col, max/argmax over each
window row, col2im for backward; average pooling the same way with mean),
and torch.nn.functional.max_pool2d / avg_pool2d with autograd. One call is
a forward and a backward with a fixed dout.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (imports torch, if present, before cdl: see _common)

import numpy as np  # noqa: E402

from conv import book_col2im, book_im2col  # noqa: E402

CASES = [  # op, (N, C, H, W), kernel, stride
    ("max", (100, 32, 28, 28), 2, 2),
    ("max", (64, 64, 33, 33), 3, 2),
    ("avg", (100, 32, 28, 28), 2, 2),
    ("avg", (64, 64, 33, 33), 3, 2),
]


def book_pool(op, x, dout, k, s):
    """The book's Pooling forward + backward (common/layers.py), max or mean."""
    N, C, H, W = x.shape
    oh, ow = (H - k) // s + 1, (W - k) // s + 1
    col = book_im2col(x, k, k, s, 0).reshape(-1, k * k)
    if op == "max":
        arg = np.argmax(col, axis=1)
        y = np.max(col, axis=1).reshape(N, oh, ow, C).transpose(0, 3, 1, 2)
    else:
        y = np.mean(col, axis=1).reshape(N, oh, ow, C).transpose(0, 3, 1, 2)
    d = dout.transpose(0, 2, 3, 1)
    if op == "max":
        dmax = np.zeros((d.size, k * k), dtype=x.dtype)
        dmax[np.arange(arg.size), arg.flatten()] = d.flatten()
    else:
        dmax = np.repeat(d.reshape(-1, 1) / (k * k), k * k, axis=1)
    dx = book_col2im(dmax.reshape(N * oh * ow, -1), x.shape, k, k, s, 0)
    return y, dx


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
    threads = _common.set_threads(args.threads)
    from cdl import layers as L
    torch = _common.torch_or_none()
    repeat, warmup = (min(args.repeat, 5), min(args.warmup, 1)) if args.quick else \
        (args.repeat, args.warmup)
    _common.print_machine()
    rows = []
    for op, shape, k, s in CASES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape).astype(np.float32)
        layer = (L.MaxPool2D if op == "max" else L.AvgPool2D)(k, stride=s)
        y = layer.forward(x)
        dout = rng.standard_normal(y.shape).astype(np.float32)

        def run_cdl():
            layer.forward(x)
            return layer.backward(dout)

        contenders = {"cdl": run_cdl, "book": lambda: book_pool(op, x, dout, k, s)}
        if torch is not None:
            fn = torch.nn.functional.max_pool2d if op == "max" else torch.nn.functional.avg_pool2d
            tx = torch.from_numpy(x.copy()).requires_grad_()
            tdout = torch.from_numpy(dout.copy())

            def run_torch():
                tx.grad = None
                fn(tx, k, s).backward(tdout)

            contenders["torch"] = run_torch
        med, first = _common.interleaved(contenders, repeat, warmup)
        mb = (x.nbytes + y.nbytes) * 2 / 1e6  # read x, write y; read dout, write dx
        row = {"op": f"{op}pool {k}x{k} s{s}", "shape": "x".join(map(str, shape)),
               "cdl ms": med["cdl"] * 1e3, "book ms": med["book"] * 1e3,
               "book/cdl": med["book"] / med["cdl"], "cdl GB/s": mb / 1e3 / med["cdl"],
               "cdl first s": first["cdl"]}
        if "torch" in med:
            row.update({"torch ms": med["torch"] * 1e3, "cdl/torch": med["cdl"] / med["torch"]})
        rows.append(row)
    summary = {"op": "geomean", "book/cdl": _common.geomean([r["book/cdl"] for r in rows])}
    if torch is not None:
        summary["cdl/torch"] = _common.geomean([r["cdl/torch"] for r in rows])
        summary["worst cdl/torch"] = max(r["cdl/torch"] for r in rows)
    _common.table(rows + [summary], ["op", "shape", "cdl ms", "torch ms", "book ms", "cdl/torch",
                                     "book/cdl", "cdl GB/s", "cdl first s"])
    print(f"threads={threads}; cdl/torch < 1 means cdl is faster; GB/s counts x, y, dout, dx once")
    path = _common.save("pool", {"threads": threads, "repeat": repeat, "rows": rows,
                                 "summary": summary}, args.json)
    print(f"wrote {path}")
    return rows, summary


if __name__ == "__main__":
    main()
