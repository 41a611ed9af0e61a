"""The speed report of ``cdl bench``: what cdl's own layers cost on this machine, and why.

    cdl bench [--threads N] [--full]

Three tables, cdl alone (no other framework is needed):

    conv       Conv2D forward + backward (dx, dW, db) on five shapes: ms, GFLOP/s, and
               the algorithm each direction got, and why (cdl.kernels.tuner: measured
               on this machine, cached from an earlier run, or a heuristic)
    layers     one DeepConvNet training step, layer by layer: forward and backward ms
               and each layer's share of the step, then the algorithm of each conv layer
    inference  images/s of DeepConvNet and ResNet

Calls are timed round-robin with a short untimed busy pause before each
(``interleaved``), and the machine line names the CPU and SIMD flags,
threads, library versions and BLAS, so that reports compare across
machines. The first call of a conv shape includes its tuning ("cdl first s").

Comparisons against the book's NumPy code and PyTorch live in the source
checkout's bench/ scripts (bench/conv.py, bench/pool.py, bench/epoch.py),
which reuse this module's machine line, threads, timing and tables.
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
BATCH = 100  # DeepConvNet's training batch in the layers table
INFERENCE_BATCH = 500


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
    for var in ("OPENBLAS_CORETYPE", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "ATEN_CPU_CAPABILITY",
                "ONEDNN_MAX_CPU_ISA"):
        if var in os.environ:  # code compiled for another CPU than this one (emulating it)
            info[var] = os.environ[var]
    return info


PAUSE = 0.02  # seconds between timed calls (see interleaved)


def pause(seconds=PAUSE):
    """Busy-wait for seconds in the calling thread (untimed; see interleaved)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass  # busy on purpose: after a sleep the next call pays a thread wake-up (interleaved)


def interleaved(contenders, repeat, warmup, setup=None, pause_s=PAUSE):
    """Median seconds per contender, timed round-robin; and each one's first-call seconds.

    contenders: {name: zero-argument callable}, each timed repeat times. warmup
    untimed calls come first (at least one); the first of them is reported
    apart (compilation, caches). setup
    (optional) runs before every call, untimed. pause_s (seconds, untimed)
    comes before every timed call, so that a contender whose idle threads
    spin for a while after it returns (PyTorch's OpenMP runtime does, by
    default for about 5 ms) does not slow down the next contender.

    While kernels compile in a second process (cdl.kernels.ahead: the first
    calls on a cold Numba cache start it), the warm-up waits for it and runs
    each contender once more, so that the timed calls run the kernels the
    tuner picks among all of them.

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
    if wait_for_compiles():  # time the steady state: every kernel compiled, choices tuned
        for fn in contenders.values():
            if setup:
                setup()
            fn()
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


def wait_for_compiles():
    """Wait for kernels compiling in a second process (cdl.kernels.ahead), if any; returns
    whether there were (then the next call of each geometry is tuned among them all)."""
    import sys
    ahead = sys.modules.get("cdl.kernels.ahead")  # not imported: nothing started it
    if ahead is None or not any(ahead.running(d) for d in ahead.DTYPES):
        return False
    ahead.wait()
    return True


def geomean(values):
    """Geometric mean of the positive values (others, None included, are left out); NaN
    when none is left."""
    values = [v for v in values if v and v > 0]
    return statistics.geometric_mean(values) if values else float("nan")


def table(rows, columns, out=print):
    """Print rows (dicts) as an aligned table with the given columns (missing cells blank),
    line by line through out."""
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


# -- the three tables ----------------------------------------------------------------

def conv_gflop(N, C, H, W, F, K, s, p):
    """GFLOP of forward + dx + dW: 3 * 2*N*OH*OW*F*C*KH*KW, for x (N, C, H, W), F filters
    of K x K, stride s and padding p."""
    oh, ow = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    return 3 * 2 * N * oh * ow * F * C * K * K / 1e9


# How a conv call's direction is named in cdl.kernels.conv (the tuner's keys) and here.
CONV_OPS = {"conv2d_forward": "forward", "conv2d_backward": "backward",
            "conv2d_backward_params": "backward without dx"}


def conv_decisions(x_shape, w_shape, stride, pad, ops=tuple(CONV_OPS), dtype="float32"):
    """{direction: tuner.Decision} of the conv ops (cdl.kernels.conv names) that have run
    on this geometry (x_shape, w_shape, stride and pad pairs, dtype) in this process: which
    algorithm each got and why (its .why)."""
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
    (whys: {direction: why}) the algorithm it got and why."""
    return [name] + [f"  {direction}: {why}" for direction, why in whys.items()]


def conv_times(shapes, repeat, warmup):
    """One row per entry (N, C, H, W, F, K, stride, pad) of shapes, timed by ``interleaved``
    (repeat, warmup): cdl's Conv2D forward + backward ms,
    GFLOP/s, first-call seconds (tuning included), "algo" the algorithms its forward and
    backward got (one name when they agree) and "decisions" why."""
    from cdl import layers as L
    rows = []
    for (N, C, H, W, F, K, s, p) in shapes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        layer = L.Conv2D(C, F, K, stride=s, pad=p, rng=rng)
        oh, ow = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
        dout = rng.standard_normal((N, F, oh, ow)).astype(np.float32)

        def run():
            layer.forward(x)
            return layer.backward(dout)

        med, first = interleaved({"cdl": run}, repeat, warmup)
        decisions = conv_decisions(x.shape, layer.params["W"].shape, (s, s), (p, p),
                                   ("conv2d_forward", "conv2d_backward"))
        picks = [d.choice for d in decisions.values()]
        rows.append({"shape": f"N{N} {C}->{F} {H}x{W} k{K} s{s} p{p}",
                     "algo": picks[0] if len(set(picks)) == 1 else "/".join(picks),
                     "cdl ms": med["cdl"] * 1e3,
                     "cdl GFLOP/s": conv_gflop(N, C, H, W, F, K, s, p) / med["cdl"],
                     "cdl first s": first["cdl"],
                     "decisions": {k: d.why for k, d in decisions.items()}})
    return rows


def layer_times(net, x, t, repeat, warmup):
    """One row per top-level layer of net (a Sequential with a loss): median forward and
    backward ms of a training step on (x, t), and the layer's share of the step.

    The step runs layer by layer as ``Sequential.loss`` and ``backward(input_grad=False)``
    do (the first layer computes no dx); the loss and the optimizer are left out. Medians
    of repeat timed steps after warmup untimed ones.
    """
    n = len(net.layers)
    fwd, bwd = [[] for _ in range(n)], [[] for _ in range(n)]
    shapes = [None] * n
    for rep in range(warmup + repeat):
        keep = rep >= warmup
        pause()
        h = x
        for i, layer in enumerate(net.layers):
            t0 = time.perf_counter()
            h = layer.forward(h, train=True)
            if keep:
                fwd[i].append(time.perf_counter() - t0)
            shapes[i] = tuple(h.shape[1:])
        net.loss_layer.forward(h, t)
        d = net.loss_layer.backward()
        for i in range(n - 1, -1, -1):
            layer = net.layers[i]
            t0 = time.perf_counter()
            d = layer.backward_params(d) if i == 0 else layer.backward(d)
            if keep:
                bwd[i].append(time.perf_counter() - t0)
    f = [statistics.median(v) for v in fwd]
    b = [statistics.median(v) for v in bwd]
    total = sum(f) + sum(b)
    return [{"layer": f"{i} {layer.name}", "output": "x".join(map(str, shapes[i])),
             "fwd ms": f[i] * 1e3, "bwd ms": b[i] * 1e3,
             "share %": 100 * (f[i] + b[i]) / total}
            for i, layer in enumerate(net.layers)]


def inference_times(repeat, warmup, batch=INFERENCE_BATCH):
    """images/s of DeepConvNet and ResNet in inference mode (``predict``) on batches of batch
    28x28 images, timed by ``interleaved`` (repeat, warmup)."""
    from cdl.models import DeepConvNet, ResNet
    x = np.random.default_rng(1).random((batch, 1, 28, 28), dtype=np.float32)
    rows = []
    for name, make in (("DeepConvNet", DeepConvNet), ("ResNet", ResNet)):
        net = make(rng=0)
        med, _ = interleaved({"cdl": lambda: net.predict(x)}, repeat, warmup)
        rows.append({"model": name, "batch": batch, "cdl img/s": batch / med["cdl"]})
    return rows


WHY_HEADER = ("algorithm per shape and direction, and why (cdl.kernels.conv; "
              "\"measured\": timed on the first call, \"cached\": by an earlier run):")
CONV_COLUMNS = ["shape", "algo", "cdl ms", "cdl GFLOP/s", "cdl first s"]
LAYER_COLUMNS = ["layer", "output", "fwd ms", "bwd ms", "share %"]
INFERENCE_COLUMNS = ["model", "batch", "cdl img/s"]


def report(threads=None, full=False, torch=None, out=print):
    """Run the three tables (quick unless full) and print them; returns them as a dict.

    torch: the comparison with PyTorch runs in bench/ (see the module doc); given here,
    the report only says where (cdl's tables never need it). threads goes to
    ``set_threads``; the tables are printed through out.
    """
    from cdl.models import DeepConvNet
    threads = set_threads(threads)
    repeat, warmup = (10, 2) if full else (3, 1)
    out("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()))
    out(f"threads={threads}; median of {repeat} interleaved runs")
    if torch is not None:
        out("comparisons with PyTorch and the book's NumPy code: bench/conv.py, bench/pool.py "
            "and bench/epoch.py in a source checkout")
    res = {}
    out("\nConv2D forward + backward (dx, dW, db), float32")
    res["conv"] = conv_times(CONV_SHAPES, repeat, warmup)
    table(res["conv"], CONV_COLUMNS, out)
    out(WHY_HEADER)
    for row in res["conv"]:
        for line in decision_lines(row["shape"], row["decisions"]):
            out("  " + line)
    out(f"\nDeepConvNet training step, batch {BATCH}, layer by layer (loss and update "
        f"left out)")
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, BATCH)
    net = DeepConvNet(rng=0)
    res["layers"] = layer_times(net, x, t, repeat, warmup)
    table(res["layers"], LAYER_COLUMNS, out)
    out(WHY_HEADER.replace("per shape", "per conv layer of DeepConvNet"))
    res["decisions"] = {layer: {k: d.why for k, d in ds.items()}
                        for layer, ds in model_decisions(net).items()}
    for layer, whys in res["decisions"].items():
        for line in decision_lines(layer, whys):
            out("  " + line)
    out("\ninference (predict)")
    res["inference"] = inference_times(repeat, warmup, INFERENCE_BATCH)
    table(res["inference"], INFERENCE_COLUMNS, out)
    return res
