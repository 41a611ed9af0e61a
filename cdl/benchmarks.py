"""The speed report of ``cdl bench``, and the pieces the bench/ scripts share.

    cdl bench [--threads N] [--full]

Three contenders, timed interleaved in one process (round-robin, so a noisy
neighbour hits all of them alike, with a short untimed busy pause before
each call so that no contender's idle threads bill the next one) with the same
thread count: cdl, the book's NumPy code (written out below as the book has
it) and PyTorch when it is installed. Reported: median times, ratios, and the machine (CPU and
SIMD flags, threads, library versions, BLAS). The tables:

    conv       Conv2D forward + backward (dx, dW, db) on five shapes
    pool       max and average pooling, forward + backward
    train      DeepConvNet training steps on 28x28 images, batch 100, Adam
    inference  images/s of DeepConvNet and ResNet

Below the conv and train tables: the algorithm each convolution got, per
direction, and why ("measured: winograd 0.62 ms vs gemm 0.91 ms", "heuristic:
tiny layer (0.9 MFLOP)"; see cdl.kernels.tuner). The first call of a shape
includes its tuning ("cdl first s").

The quick default takes well under two minutes on 2 cores; bench/conv.py,
bench/pool.py and bench/epoch.py run the long versions and write JSON.
"""
import os
import platform
import statistics
import time

import numpy as np

CONV_SHAPES = [  # N, C, H, W, F, K, stride, pad
    (100, 1, 28, 28, 16, 3, 1, 1),      # first layer, one input channel
    (100, 16, 14, 14, 32, 3, 1, 1),
    (64, 64, 16, 16, 64, 3, 1, 1),
    (32, 3, 32, 32, 64, 5, 2, 2),
    (128, 128, 8, 8, 256, 1, 1, 0),     # pointwise (Inception, ResNet bottlenecks)
]
POOL_CASES = [  # op, (N, C, H, W), kernel, stride
    ("max", (100, 32, 28, 28), 2, 2),
    ("max", (64, 64, 33, 33), 3, 2),
    ("avg", (100, 32, 28, 28), 2, 2),
    ("avg", (64, 64, 33, 33), 3, 2),
]
BATCH = 100


# -- machine, threads, timing, tables ------------------------------------------------

def torch_or_none():
    """torch when installed, else None (cdl never needs it)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def set_threads(n=None):
    """Use n threads (default: all cores) in Numba, hence cdl, in BLAS and in torch; returns n."""
    import numba
    n = n or os.cpu_count()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    from threadpoolctl import threadpool_limits  # a dependency of cdl
    threadpool_limits(n)
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(n)
    return n


def cpu_description():
    """'model name [SIMD flags of interest]' from /proc/cpuinfo (or platform elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:  # no /proc (not Linux): the platform's name alone
        pass
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                        "avx512_vpopcntdq", "avx512_vnni", "popcnt") if f in flags]
    return f"{model} [{' '.join(simd)}]"


def numba_threading_layer():
    """The threading layer Numba actually uses; runs a tiny parallel kernel to find out."""
    import numba
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        @numba.njit(parallel=True)
        def probe(a):
            for i in numba.prange(a.size):
                a[i] = i
        probe(np.zeros(4))
        return numba.threading_layer()


def machine():
    """A dict describing the machine and library versions, printed and saved with results."""
    import numba
    info = {"cpu": cpu_description(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__,
            "numba_threads": numba.get_num_threads(), "numba_layer": numba_threading_layer(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    from threadpoolctl import threadpool_info
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if blas:
        info["blas"] = f"{blas[0].get('internal_api')} {blas[0].get('version')} " \
                       f"{blas[0].get('architecture')} x{blas[0].get('num_threads')}"
    torch = torch_or_none()
    info["torch"] = None if torch is None else f"{torch.__version__} x{torch.get_num_threads()}"
    if "OPENBLAS_CORETYPE" in os.environ:
        info["OPENBLAS_CORETYPE"] = os.environ["OPENBLAS_CORETYPE"]
    return info


PAUSE = 0.02  # seconds between timed calls (see interleaved)


def pause(seconds=PAUSE):
    """Busy-wait this long in the calling thread (untimed; see interleaved)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass  # busy on purpose: after a sleep the next call pays a thread wake-up (interleaved)


def interleaved(contenders, repeat, warmup, setup=None, pause_s=PAUSE):
    """Median seconds per contender, timed round-robin; and each one's first-call seconds.

    contenders: {name: zero-argument callable}. Warm-up calls come first;
    the first of them is reported apart (compilation, caches). setup
    (optional) runs before every call, untimed. pause_s (seconds, untimed)
    comes before every timed call, so that a contender whose idle threads
    spin for a while after it returns (PyTorch's OpenMP runtime does, by
    default for about 5 ms) does not slow down the next contender.

    The pause busy-waits instead of sleeping. On the 2-vCPU virtual machines
    this project is measured on, a process that sleeps for 10 ms or more pays
    about 2 to 5 ms when its next call wakes a second thread (a BatchNorm
    forward + backward: 3.9 ms after a busy pause, 6.2 ms after time.sleep;
    a Conv2D 3->64 5x5: 6.4 against 11.4 ms), a cost that a training loop,
    calling layer after layer, does not pay; PyTorch's times do not change.
    """
    first = {}
    for name, fn in contenders.items():
        for i in range(max(warmup, 1)):
            if setup:
                setup()
            t0 = time.perf_counter()
            fn()
            if i == 0:
                first[name] = time.perf_counter() - t0
    times = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            if setup:
                setup()
            if pause_s:
                pause(pause_s)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}, first


def geomean(values):
    values = [v for v in values if v and v > 0]
    return statistics.geometric_mean(values) if values else float("nan")


def table(rows, columns, out=print):
    """Print rows (dicts) as an aligned table with the given columns (missing cells blank)."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)
    columns = [c for c in columns if any(c in r for r in rows)]
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    out("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        out("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


# -- the book's code (common/util.py, common/layers.py), float32 throughout ------------

def book_im2col(x, kh, kw, stride, pad):
    N, C, H, W = x.shape
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, kh, kw, oh, ow), dtype=x.dtype)
    for y in range(kh):
        y_max = y + stride * oh
        for x_ in range(kw):
            x_max = x_ + stride * ow
            col[:, :, y, x_, :, :] = img[:, :, y:y_max:stride, x_:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * oh * ow, -1)


def book_col2im(col, x_shape, kh, kw, stride, pad):
    N, C, H, W = x_shape
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    col = col.reshape(N, oh, ow, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(kh):
        y_max = y + stride * oh
        for x_ in range(kw):
            x_max = x_ + stride * ow
            img[:, :, y:y_max:stride, x_:x_max:stride] += col[:, :, y, x_, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]


def book_conv(x, W, b, dout, stride, pad):
    """Forward then backward of the book's Convolution layer; returns (y, dx, dW, db)."""
    FN, C, FH, FW = W.shape
    N, _, H, Wd = x.shape
    oh, ow = (H + 2 * pad - FH) // stride + 1, (Wd + 2 * pad - FW) // stride + 1
    col = book_im2col(x, FH, FW, stride, pad)
    col_W = W.reshape(FN, -1).T
    y = (col @ col_W + b).reshape(N, oh, ow, -1).transpose(0, 3, 1, 2)
    d = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
    db = d.sum(axis=0)
    dW = (col.T @ d).transpose(1, 0).reshape(FN, C, FH, FW)
    dx = book_col2im(d @ col_W.T, x.shape, FH, FW, stride, pad)
    return y, dx, dW, db


def book_pool(op, x, dout, k, s):
    """The book's Pooling forward + backward (max; average the same way with mean)."""
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


# -- the same networks in torch.nn ----------------------------------------------------

def torch_deep_convnet(torch, in_channels=1):
    """cdl.models.DeepConvNet on 28x28 in torch.nn, layer for layer, He init."""
    nn = torch.nn
    layers, cin = [], in_channels
    for stage, cout in enumerate((16, 32, 64)):
        for pad in (1, 2 if stage == 1 else 1):
            layers += [nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU()]
            cin = cout
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(64 * 4 * 4, 50), nn.ReLU(), nn.Dropout(0.5),
               nn.Linear(50, 10), nn.Dropout(0.5)]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def torch_resnet(torch, in_channels=1, channels=(16, 32, 64), blocks=1):
    """cdl.models.ResNet in torch.nn (basic blocks, 1x1 projection shortcuts)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.path = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return torch.relu(self.path(x) + self.short(x))

    layers = [nn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False),
              nn.BatchNorm2d(channels[0]), nn.ReLU()]
    cin = channels[0]
    for stage, cout in enumerate(channels):
        for b in range(blocks):
            layers.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


class CdlTrainer:
    """One DeepConvNet training step per call, the book's way (loss, backward, update)."""

    def __init__(self, seed=0):
        import cdl
        from cdl import optim
        from cdl.models import DeepConvNet
        cdl.seed(seed)
        self.net = DeepConvNet(rng=seed)
        self.opt = optim.Adam(lr=1e-3)

    def step(self, x, t):
        loss = self.net.loss(x, t)
        self.net.backward(input_grad=False)  # as torch: the images do not require grad
        self.opt.update(self.net.params, self.net.grads)
        return loss


class TorchTrainer:
    """The same step in PyTorch: DeepConvNet twin, CrossEntropyLoss, Adam(lr=1e-3)."""

    def __init__(self, torch, seed=0):
        torch.manual_seed(seed)
        self.torch = torch
        self.net = torch_deep_convnet(torch).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def step(self, x, t):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(self.torch.from_numpy(x)), self.torch.from_numpy(t))
        loss.backward()
        self.opt.step()
        return loss.item()


# -- the four tables ----------------------------------------------------------------

def conv_gflop(N, C, H, W, F, K, s, p):
    """GFLOP of forward + dx + dW: 3 * 2*N*OH*OW*F*C*KH*KW."""
    oh, ow = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    return 3 * 2 * N * oh * ow * F * C * K * K / 1e9


def _forced_conv(ck, algo, x, W, b, dout, s, p):
    """Forward and backward of cdl.kernels.conv with algo forced, outputs allocated as a
    layer does."""
    with ck.forced_algorithm(algo):
        y = ck.conv2d_forward(x, W, b, (s, s), (p, p), np.empty(dout.shape, dtype=x.dtype))
        grads = ck.conv2d_backward(dout, x, W, (s, s), (p, p), np.empty_like(x),
                                   np.empty_like(W), np.empty_like(b))
    return y, grads


# How a conv call's direction is named in cdl.kernels.conv (the tuner's keys) and here.
CONV_OPS = {"conv2d_forward": "forward", "conv2d_backward": "backward",
            "conv2d_backward_params": "backward without dx"}


def conv_decisions(x_shape, w_shape, stride, pad, ops=tuple(CONV_OPS), dtype="float32"):
    """{direction: tuner.Decision} of the conv ops (cdl.kernels.conv names) that have run
    on this geometry in this process: which algorithm each got and why (its .why)."""
    # STYLE 4 exception: a query of the CPU conv tuner, which has no CUDA twin to dispatch to
    from cdl.kernels import conv as ck
    out = {}
    for op in ops:
        d = ck.decision(x_shape, w_shape, stride, pad, dtype, op)
        if d is not None:
            out[CONV_OPS[op]] = d
    return out


def model_decisions(net, input_grad=False):
    """{layer: {direction: Decision}} for the Conv2D layers of net (a Sequential) that ran a
    training step, input_grad as its backward had it (the first layer without dx)."""
    from cdl.layers import Conv2D
    out = {}
    for i, layer in enumerate(net.layers):
        x = getattr(layer, "_x", None)  # the input its last training forward cached
        if type(layer) is Conv2D and x is not None:
            back = "conv2d_backward_params" if i == 0 and not input_grad else "conv2d_backward"
            name = (f"{i} Conv2D {layer.in_channels}->{layer.out_channels} "
                    f"{'x'.join(map(str, x.shape[2:]))} k{layer.kernel_size[0]} "
                    f"N{x.shape[0]}")
            out[name] = conv_decisions(x.shape, layer.params["W"].shape, layer.stride,
                                       layer.pad, ("conv2d_forward", back), x.dtype.name)
    return out


def decision_lines(name, whys):
    """The lines `cdl bench` prints for one conv layer: its name, then per direction
    ({direction: why}) the algorithm it got and why."""
    return [name] + [f"  {direction}: {why}" for direction, why in whys.items()]


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


WHY_HEADER = ("algorithm per shape and direction, and why (cdl.kernels.conv; "
              "\"measured\": timed on the first call, \"cached\": by an earlier run):")
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


def report(threads=None, full=False, torch=None, out=print):
    """Run the four tables (quick unless full) and print them; returns them as a dict."""
    threads = set_threads(threads)
    repeat, warmup, steps = (10, 2, 100) if full else (3, 1, 15)
    out("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()))
    out(f"threads={threads}; median of {repeat} interleaved runs; ratios < 1: cdl is faster "
        f"than the other contender" + ("" if torch else " (torch not installed)"))
    res = {}
    out("\nConv2D forward + backward (dx, dW, db), float32")
    res["conv"] = conv_rows(CONV_SHAPES, repeat, warmup, torch)
    table(res["conv"] + [summary(res["conv"])], CONV_COLUMNS, out)
    out(WHY_HEADER)
    for row in res["conv"]:
        for line in decision_lines(row["shape"], row["decisions"]):
            out("  " + line)
    out("\npooling forward + backward, float32")
    res["pool"] = pool_rows(POOL_CASES, repeat, warmup, torch)
    table(res["pool"] + [summary(res["pool"], "op")], POOL_COLUMNS, out)
    out(f"\nDeepConvNet training, batch {BATCH}, Adam (epoch = 600 steps, from {steps} timed)")
    res["train"] = training_row(steps, torch)
    table([res["train"]], TRAIN_COLUMNS, out)
    out(WHY_HEADER.replace("per shape", "per conv layer of DeepConvNet"))
    for layer, whys in res["train"]["decisions"].items():
        for line in decision_lines(layer, whys):
            out("  " + line)
    out("\ninference (cdl predict / torch eval + no_grad)")
    res["inference"] = inference_rows(torch, repeat, warmup)
    table(res["inference"], INFERENCE_COLUMNS, out)
    return res
