"""The comparison tables of the bench scripts: cdl against the book's code and PyTorch.

    conv_rows       Conv2D forward + backward (dx, dW, db) per shape (bench/conv.py)
    pool_rows       max and average pooling, forward + backward (bench/pool.py)
    training_row    DeepConvNet training steps, one cdl step then one torch step (bench/epoch.py)
    inference_rows  images/s of DeepConvNet and ResNet in inference mode (bench/epoch.py)

Every table times its contenders interleaved in one process (``cdl.benchmarks.interleaved``)
and reports medians and ratios; torch is optional (None leaves its columns out). The
contenders themselves are in bench/_twins.py; ``cdl bench`` (cdl.benchmarks) is the
cdl-only report that ships with the package.
"""
import statistics
import time

import numpy as np

from cdl.benchmarks import (BATCH, CONV_SHAPES, WHY_HEADER, conv_decisions, conv_gflop,
                            decision_lines, geomean, interleaved, model_decisions, pause,
                            wait_for_compiles)
from _twins import (CdlTrainer, TorchTrainer, book_conv, book_pool, torch_deep_convnet,
                   torch_resnet)

# The bench scripts import this module as B; the names below are theirs (cdl.benchmarks's
# and _twins's included, so that one import serves a script).
__all__ = ["CONV_SHAPES", "POOL_CASES", "BATCH", "WHY_HEADER", "CONV_COLUMNS", "POOL_COLUMNS",
           "TRAIN_COLUMNS", "INFERENCE_COLUMNS", "conv_rows", "pool_rows", "training_data",
           "batch_order", "training_row", "inference_rows", "summary", "decision_lines",
           "CdlTrainer", "TorchTrainer", "torch_deep_convnet", "torch_resnet"]

POOL_CASES = [  # op, (N, C, H, W), kernel, stride
    ("max", (100, 32, 28, 28), 2, 2),
    ("max", (64, 64, 33, 33), 3, 2),
    ("avg", (100, 32, 28, 28), 2, 2),
    ("avg", (64, 64, 33, 33), 3, 2),
]


def _forced_conv(ck, algo, x, W, b, dout, s, p):
    """Forward and backward of cdl.kernels.conv with algo forced, outputs allocated as a
    layer does."""
    with ck.forced_algorithm(algo):
        y = ck.conv2d_forward(x, W, b, (s, s), (p, p), np.empty(dout.shape, dtype=x.dtype))
        grads = ck.conv2d_backward(dout, x, W, (s, s), (p, p), np.empty_like(x),
                                   np.empty_like(W), np.empty_like(b))
    return y, grads


def conv_rows(shapes, repeat, warmup, torch=None, algos=False, with_dx=False):
    """One row per (N, C, H, W, F, K, stride, pad): cdl, book, torch ms, ratios, GFLOP/s;
    "algo" the algorithms cdl's forward and backward got (one name when they agree) and
    "decisions" why. with_dx adds cdl's forward ("fwd ms"), backward without the input
    gradient (a first layer's, "bwd ms") and with it ("bwd+dx ms", as inside a network),
    timed apart."""
    from cdl import layers as L
    # STYLE 4 exception: timing each CPU conv algorithm forced, and the tuner's choice
    from cdl.kernels import conv as ck
    rows = []
    for (N, C, H, W, F, K, s, p) in shapes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        layer = L.Conv2D(C, F, K, stride=s, pad=p, rng=rng)
        layer.params["b"][:] = rng.standard_normal(F)
        Wt, b = layer.params["W"], layer.params["b"]
        oh, ow = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
        dout = rng.standard_normal((N, F, oh, ow)).astype(np.float32)

        def run_cdl():
            layer.forward(x)
            return layer.backward(dout)

        contenders = {"cdl": run_cdl, "book": lambda: book_conv(x, Wt, b, dout, s, p)}
        if with_dx:
            contenders.update({"cdl fwd": lambda: layer.forward(x),
                               "cdl bwd": lambda: layer.backward_params(dout),
                               "cdl bwd+dx": lambda: layer.backward(dout)})
        applicable = ck.applicable(x.shape, Wt.shape, (s, s), (p, p))
        for algo in applicable if algos else ():
            contenders[algo] = (lambda a: lambda: _forced_conv(ck, a, x, Wt, b, dout, s, p))(algo)
        if torch is not None:
            tx = torch.from_numpy(x.copy()).requires_grad_()
            tw = torch.from_numpy(Wt.copy()).requires_grad_()
            tb = torch.from_numpy(b.copy()).requires_grad_()
            tdout = torch.from_numpy(dout.copy())

            def run_torch():
                tx.grad = tw.grad = tb.grad = None
                torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p).backward(tdout)

            contenders["torch"] = run_torch
        med, first = interleaved(contenders, repeat, warmup)
        g = conv_gflop(N, C, H, W, F, K, s, p)
        ops = ("conv2d_forward", "conv2d_backward") + (
            ("conv2d_backward_params",) if with_dx else ())
        decisions = conv_decisions(x.shape, Wt.shape, (s, s), (p, p), ops)
        picks = [d.choice for d in decisions.values()]
        row = {"shape": f"N{N} {C}->{F} {H}x{W} k{K} s{s} p{p}",
               "algo": picks[0] if len(set(picks)) == 1 else "/".join(picks),
               "cdl ms": med["cdl"] * 1e3, "book ms": med["book"] * 1e3,
               "book/cdl": med["book"] / med["cdl"], "cdl GFLOP/s": g / med["cdl"],
               "cdl first s": first["cdl"],
               "decisions": {k: d.why for k, d in decisions.items()}}
        if with_dx:
            row.update({"fwd ms": med["cdl fwd"] * 1e3, "bwd ms": med["cdl bwd"] * 1e3,
                        "bwd+dx ms": med["cdl bwd+dx"] * 1e3})
        for algo in applicable if algos else ():
            row[f"{algo} ms"] = med[algo] * 1e3
        if "torch" in med:
            row.update({"torch ms": med["torch"] * 1e3, "cdl/torch": med["cdl"] / med["torch"],
                        "torch GFLOP/s": g / med["torch"]})
        rows.append(row)
    return rows


def pool_rows(cases, repeat, warmup, torch=None):
    """One row per (op, shape, kernel, stride): cdl, book, torch ms and ratios."""
    from cdl import layers as L
    rows = []
    for op, shape, k, s in cases:
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
        med, first = interleaved(contenders, repeat, warmup)
        mb = (x.nbytes + y.nbytes) * 2 / 1e6  # x, y, dout, dx once each
        row = {"op": f"{op}pool {k}x{k} s{s}", "shape": "x".join(map(str, shape)),
               "cdl ms": med["cdl"] * 1e3, "book ms": med["book"] * 1e3,
               "book/cdl": med["book"] / med["cdl"], "cdl GB/s": mb / 1e3 / med["cdl"],
               "cdl first s": first["cdl"]}
        if "torch" in med:
            row.update({"torch ms": med["torch"] * 1e3, "cdl/torch": med["cdl"] / med["torch"]})
        rows.append(row)
    return rows


def training_data(n=60000, seed=0):
    """(x, t, name): Fashion-MNIST's training images, or random ones of that shape."""
    try:
        from cdl.data import load_fashion_mnist
        (x, t), _ = load_fashion_mnist()
        return x[:n], t[:n].astype(np.int64), "Fashion-MNIST"
    except (ImportError, OSError, ValueError):
        rng = np.random.default_rng(seed)
        return (rng.random((n, 1, 28, 28), dtype=np.float32),
                rng.integers(0, 10, n).astype(np.int64), "random 28x28")


def batch_order(n, steps, seed=0):
    """Index arrays of ``steps`` batches of BATCH from one shuffle of range(n)."""
    order = np.random.default_rng(seed).permutation(n)
    return [order[(i * BATCH) % n:(i * BATCH) % n + BATCH] for i in range(steps)]


def training_row(steps, torch=None, epoch_steps=600):
    """DeepConvNet steps, one cdl step then one torch step, each timed; epoch = sum scaled."""
    x, t, data = training_data()
    trainers = {"cdl": CdlTrainer()}
    if torch is not None:
        trainers["torch"] = TorchTrainer(torch)
    batches = batch_order(len(x), steps + 2)
    first = {}
    for name, tr in trainers.items():  # warm-up; the first step is reported apart
        t0 = time.perf_counter()
        tr.step(x[batches[0]], t[batches[0]])
        first[name] = time.perf_counter() - t0
        tr.step(x[batches[1]], t[batches[1]])
    if wait_for_compiles():  # a cold cache: time the steps with every kernel, tuned
        trainers["cdl"].step(x[batches[1]], t[batches[1]])
    times = {name: [] for name in trainers}
    for idx in batches[2:]:
        xb, tb = x[idx], t[idx]
        for name, tr in trainers.items():
            pause()  # untimed: the other framework's idle threads settle (see interleaved)
            t0 = time.perf_counter()
            tr.step(xb, tb)
            times[name].append(time.perf_counter() - t0)
    scale = epoch_steps / steps
    row = {"model": "DeepConvNet", "data": data, "steps": steps,
           "cdl epoch s": sum(times["cdl"]) * scale,
           "cdl step ms": statistics.median(times["cdl"]) * 1e3, "cdl first s": first["cdl"],
           "decisions": {layer: {k: d.why for k, d in ds.items()} for layer, ds in
                         model_decisions(trainers["cdl"].net).items()}}
    if "torch" in times:
        row.update({"torch epoch s": sum(times["torch"]) * scale,
                    "torch step ms": statistics.median(times["torch"]) * 1e3,
                    "cdl/torch": sum(times["cdl"]) / sum(times["torch"])})
    return row


def inference_rows(torch, repeat, warmup, batch=500):
    """images/s of DeepConvNet and ResNet in inference mode, cdl vs torch, interleaved."""
    from cdl.models import DeepConvNet, ResNet
    x = np.random.default_rng(1).random((batch, 1, 28, 28), dtype=np.float32)
    rows = []
    for name, make, twin in [("DeepConvNet", DeepConvNet, torch_deep_convnet),
                             ("ResNet", ResNet, torch_resnet)]:
        net = make(rng=0)
        contenders = {"cdl": lambda: net.predict(x)}
        if torch is not None:
            tnet, tx = twin(torch).eval(), torch.from_numpy(x)

            def run_torch():
                with torch.no_grad():
                    tnet(tx)

            contenders["torch"] = run_torch
        med, _ = interleaved(contenders, repeat, warmup)
        row = {"model": name, "batch": batch, "cdl img/s": batch / med["cdl"]}
        if "torch" in med:
            row.update({"torch img/s": batch / med["torch"],
                        "cdl/torch time": med["cdl"] / med["torch"]})
        rows.append(row)
    return rows


CONV_COLUMNS = ["shape", "algo", "cdl ms", "torch ms", "book ms", "cdl/torch", "book/cdl",
                "cdl GFLOP/s", "torch GFLOP/s"]
POOL_COLUMNS = ["op", "shape", "cdl ms", "torch ms", "book ms", "cdl/torch", "book/cdl", "cdl GB/s"]
TRAIN_COLUMNS = ["model", "data", "steps", "cdl step ms", "torch step ms", "cdl epoch s",
                 "torch epoch s", "cdl/torch"]
INFERENCE_COLUMNS = ["model", "batch", "cdl img/s", "torch img/s", "cdl/torch time"]


def summary(rows, key="shape"):
    """The geometric-mean row of a table (cdl/torch, book/cdl, worst cdl/torch)."""
    out = {key: "geomean"}
    for ratio in ("cdl/torch", "book/cdl"):
        if all(ratio in r for r in rows):
            out[ratio] = geomean([r[ratio] for r in rows])
    if "cdl/torch" in out:
        out["worst cdl/torch"] = max(r["cdl/torch"] for r in rows)
    return out
