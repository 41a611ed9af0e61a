"""Binary (XNOR/popcount) products and packed inference against float32 BLAS.

    python bench/binary.py [--repeat 10] [--warmup 2] [--threads 2] [--quick]

1. GEMM: cdl.bitops.binary_matmul on packed rows (M, K/64 words) x (N, K/64)
   against NumPy's float32 matmul (M, K) @ (K, N) (OpenBLAS/MKL sgemm) and
   torch.matmul when torch is installed, timed interleaved. Every GEMM variant
   this CPU runs is timed too, forced (``cdl.kernels._binary_gemm`` describes
   them: "tiled", "vector", "hybrid", "scalar"); "cdl" is binary_matmul with
   the variant the tuner picks, validation included. GOPS counts 2*M*N*K (one
   multiply and one add per +-1 element pair, as sgemm's GFLOP/s does), and
   "x sgemm" is sgemm time / cdl time.
   After the NumPy sgemm, the next contender waits (untimed) until OpenBLAS's
   threads stop spinning (see ``let_blas_threads_rest``).
2. Inference: BinaryMLP (3 x 2048, 28x28 input) and BinaryConvNet, packed
   (``net.pack()``) vs their float twins and vs the float-simulated binary
   model, images/s on one batch.
3. Bytes: what the packed and float models store.

    python bench/binary.py --train [--epoch-images 10000] [--epochs 2]

4. Training (--train, instead of 1-3): a BinaryMLP (3 x 1024, 784 inputs,
   batch 100, Adam) step (loss, backward without dx, update) against its
   float twin (Affine -> BatchNorm -> ReLU, same shapes), interleaved; then
   whole epochs as examples/07_binary.py runs them (Trainer with a cosine
   schedule on the first --epoch-images Fashion-MNIST images, the 8x8
   digits when it is not installed; after each epoch the train accuracy on
   those images and the test loss and accuracy on the 10,000 test images,
   in batches of 1000), the binary and the float fit alternating, each in a
   fresh model. The epoch row splits each epoch into its steps (each from
   the end of the last one: the batch's copy and checks included; timed by a
   callback), the evaluation (``trainer.evaluate``: the test set predicted
   twice, for the loss and for the accuracy, and the train images once)
   and the rest (drawing the order, callbacks, the schedule); cpu_s is the
   process's CPU time over the epoch (all its threads), less sensitive than
   wall time to other processes on a shared machine.
   Epochs are timed from the second on: the first epoch of a process also
   loads every kernel it calls from Numba's cache, or compiles them when the
   cache is empty (measured on a 2-vCPU Zen 5: the first BinaryMLP step took
   0.8 s from the cache, 2.1 s with an empty one, against 0.05 s later),
   and the model trained first pays for the kernels both share
   (first_epoch_s shows it; examples/07_binary.py trains the binary first).

    python bench/binary.py --asm    # what LLVM emits for the GEMM kernels

prints the innermost loop of each kernel as compiled for this CPU and, in a
subprocess with NUMBA_CPU_NAME/NUMBA_CPU_FEATURES, for an AVX-512 VPOPCNTDQ
CPU (icelake-server): compiled only, never run there.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import numpy as np  # noqa: E402

ICELAKE = ("icelake-server", "+64bit,+sse2,+sse4.2,+popcnt,+avx,+avx2,+fma,+bmi,+bmi2,+lzcnt,"
           "+movbe,+f16c,+cx16,+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl,"
           "+avx512vpopcntdq,+avx512bitalg,+avx512vnni")

GEMM_SHAPES = [  # M, N, K
    (1024, 1024, 4096),   # the target shape
    (1000, 2048, 2048),   # a BinaryMLP hidden layer on a batch of 1000
    (256, 256, 8192),
    (6272, 128, 1152),    # a 3x3 conv, 128 -> 128 channels, 7x7 maps, batch 128 (im2col rows)
    (64, 2048, 2048),     # a small batch
]


def torch_module():
    try:
        import torch
        return torch
    except ImportError:
        return None


# OpenBLAS's worker threads spin for about 140 ms after each call before they sleep (its
# THREAD_TIMEOUT; measured here: a process sleeping 200 ms right after a 1024x1024x4096
# sgemm still uses 136 ms of CPU). Whatever runs next would share a core with that
# spinning thread, so after the NumPy sgemm the next contender waits, untimed, until it
# has stopped.
_BLAS_SPIN_S = 0.2
_blas_ran = [False]


def after_blas(fn):
    """fn, noting that it ran OpenBLAS (``let_blas_threads_rest`` then waits)."""
    def run():
        fn()
        _blas_ran[0] = True
    return run


def let_blas_threads_rest():
    if _blas_ran[0]:
        time.sleep(_BLAS_SPIN_S)
        _blas_ran[0] = False


def _forced(K, variant, a, b, n, out):
    """xnor_gemm with its CPU variant forced (the variant is no kernel argument)."""
    with K.forced_variant(variant):
        return K.xnor_gemm(a, b, n, out)


def bench_gemm(args, rng):
    from cdl import bitops
    from cdl.kernels import binary as K
    torch = torch_module()
    rows = []
    shapes = GEMM_SHAPES[:2] if args.quick else GEMM_SHAPES
    for M, N, Kbits in shapes:
        A = rng.standard_normal((M, Kbits), dtype=np.float32)
        B = rng.standard_normal((Kbits, N), dtype=np.float32)
        a, b = bitops.pack_bits(A), bitops.pack_bits(np.ascontiguousarray(B.T))
        out = np.empty((M, N), np.int32)
        corner = np.where(A[:8] >= 0, 1, -1) @ np.where(B[:, :8] >= 0, 1, -1)
        assert np.array_equal(bitops.binary_matmul(a, b, Kbits)[:8, :8], corner)
        contenders = {"cdl": lambda: bitops.binary_matmul(a, b, Kbits)}
        for v in K.applicable_variants():
            contenders[f"cdl {v}"] = (lambda v=v: _forced(K, v, a, b, Kbits, out))
        contenders["numpy sgemm"] = after_blas(lambda: A @ B)
        if torch is not None:
            tA, tB = torch.from_numpy(A), torch.from_numpy(B)
            contenders["torch sgemm"] = lambda: torch.matmul(tA, tB)
        med, first = _common.interleaved(contenders, args.repeat, args.warmup,
                                         setup=let_blas_threads_rest)
        ops = 2.0 * M * N * Kbits
        for name, t in med.items():
            rows.append({"op": "gemm", "shape": f"{M}x{N}x{Kbits}", "contender": name,
                         "ms": 1e3 * t, "GOPS": ops / t / 1e9,
                         "x sgemm": med["numpy sgemm"] / t,
                         "first_ms": 1e3 * first[name]})
    return rows


def _random_bn_stats(net, rng):
    """Plausible running statistics, so thresholds are not all trivial."""
    from cdl import layers as L
    for layer in net.layers:
        if isinstance(layer, L.BatchNorm):
            c = layer.num_features
            layer.running_mean = rng.normal(0, 4, c)
            layer.running_var = rng.uniform(20, 60, c)
    return net


def bench_inference(args, rng):
    from cdl.models import BinaryConvNet, BinaryMLP
    rows, sizes = [], []
    cases = [("BinaryMLP 3x2048", BinaryMLP, {"hidden": (2048, 2048, 2048)}, 1000),
             ("BinaryConvNet 64-128", BinaryConvNet, {"channels": (64, 128)}, 200)]
    if args.quick:
        cases = cases[:1]
    for label, cls, kw, batch in cases:
        net = _random_bn_stats(cls(rng=0, **kw), rng)
        twin = cls.float_twin(rng=0, **kw)
        packed = net.pack()
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
        assert np.array_equal(packed.predict(x), net.predict(x))
        contenders = {"packed": lambda: packed.predict(x),
                      "float twin": lambda: twin.predict(x),
                      "binary as float": lambda: net.predict(x)}
        med, first = _common.interleaved(contenders, args.repeat, args.warmup)
        for name, t in med.items():
            rows.append({"op": "inference", "shape": f"{label}, batch {batch}",
                         "contender": name, "ms": 1e3 * t, "img/s": batch / t,
                         "x float twin": med["float twin"] / t, "first_ms": 1e3 * first[name]})
        sizes.append({"model": label, "packed_bytes": packed.nbytes,
                      "float_bytes": packed.float_bytes,
                      "ratio": packed.float_bytes / packed.nbytes})
    return rows, sizes


STEP_HIDDEN, STEP_BATCH, STEP_INPUT = (1024, 1024, 1024), 100, (1, 28, 28)


def bench_train_step(args, rng):
    """BinaryMLP step vs its float twin, interleaved: rows of ms and ratios (wall, CPU)."""
    from cdl.benchmarks import PAUSE, pause
    from cdl import optim
    from cdl.models import BinaryMLP
    x = rng.random((STEP_BATCH, *STEP_INPUT), dtype=np.float32)
    t = rng.integers(0, 10, STEP_BATCH)
    kw = {"input_shape": STEP_INPUT, "hidden": STEP_HIDDEN}
    nets = {"binary": BinaryMLP(rng=0, **kw), "float twin": BinaryMLP.float_twin(rng=0, **kw)}
    opts = {k: optim.Adam(lr=1e-3) for k in nets}

    def step(k):
        nets[k].loss(x, t)
        nets[k].backward(input_grad=False)
        opts[k].update(nets[k].params, nets[k].grads)
    for k in nets:  # warm-up: kernels loaded, workspaces allocated
        for _ in range(max(1, args.warmup)):
            step(k)
    wall, cpu = {k: [] for k in nets}, {k: [] for k in nets}
    for _ in range(args.repeat):  # round-robin; CPU time is that of the whole process
        for k in nets:
            pause(PAUSE)
            w0, c0 = time.perf_counter(), time.process_time()
            step(k)
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    med = {k: float(np.median(v)) for k, v in wall.items()}
    med_cpu = {k: float(np.median(v)) for k, v in cpu.items()}
    label = f"BinaryMLP 3x{STEP_HIDDEN[0]}, batch {STEP_BATCH}, Adam"
    return [{"op": "train step", "shape": label, "contender": k, "ms": 1e3 * v,
             "x float twin": v / med["float twin"], "cpu_ms": 1e3 * med_cpu[k],
             "x cpu": med_cpu[k] / med_cpu["float twin"]} for k, v in med.items()]


def _fit_epochs(kind, data, epochs, images):
    """One fit: wall seconds per epoch (total, steps, evaluation: lists, one per epoch), the
    final test accuracy, and the process CPU seconds per epoch."""
    import cdl
    from cdl import optim
    from cdl.models import BinaryMLP
    (x, t), test = data
    kw = {"input_shape": x.shape[1:], "hidden": STEP_HIDDEN}
    net = BinaryMLP(rng=0, **kw) if kind == "binary" else BinaryMLP.float_twin(rng=0, **kw)
    steps, evals, cpu, clock = [], [], [], {}

    class Timer(cdl.Callback):  # the steps' time: from each batch's start to its end
        def on_epoch_begin(self, trainer, epoch, logs=None):
            steps.append(0.0)
            clock["t"], clock["cpu"] = time.perf_counter(), time.process_time()

        def on_batch_end(self, trainer, batch, logs):
            now = time.perf_counter()
            steps[-1] += now - clock["t"]
            clock["t"] = now

        def on_epoch_end(self, trainer, epoch, logs):
            cpu.append(time.process_time() - clock["cpu"])

    trainer = cdl.Trainer(net, optim.Adam(lr=3e-3), batch_size=STEP_BATCH, epochs=epochs,
                          seed=0, eval_samples=images, verbose=False,
                          callbacks=[optim.CosineLR(total=epochs, lr_min=3e-5), Timer()])
    evaluate = trainer.evaluate

    def timed_evaluate(*a, **k):
        t0 = time.perf_counter()
        try:
            return evaluate(*a, **k)
        finally:
            evals.append(time.perf_counter() - t0)
    trainer.evaluate = timed_evaluate
    history = trainer.fit(x, t, validation_data=test)
    return history["time"], steps, evals, history["val_acc"][-1], cpu


def bench_train_epoch(args):
    """Epochs of BinaryMLP vs its float twin, fits alternating: rows of seconds and ratios."""
    from cdl import data
    if data.fashion_mnist_available() and not args.quick:
        name, ((x, t), test) = "Fashion-MNIST", data.load_fashion_mnist()
    else:
        name, ((x, t), test) = "digits 8x8", data.load_digits()
    x, t = x[:args.epoch_images], t[:args.epoch_images]
    runs = {"binary": [], "float twin": []}
    for _ in range(args.fits):
        for kind in runs:
            runs[kind].append(_fit_epochs(kind, ((x, t), test), args.epochs, len(x)))
    rows = []
    for kind, fits in runs.items():
        # epochs from the second on (the first when there is only one): see the module doc
        later = [f[i][1:] or f[i] for f in fits for i in (0, 1, 2, 4)]
        total, steps, evals, cpu = (sum(later[i::4], []) for i in range(4))
        rows.append({"op": "train epoch", "shape": f"{name}, {len(x)} images", "contender": kind,
                     "epoch_s": float(np.median(total)), "steps_s": float(np.median(steps)),
                     "eval_s": float(np.median(evals)), "cpu_s": float(np.median(cpu)),
                     "first_epoch_s": float(np.median([f[0][0] for f in fits])),
                     "val_acc": float(np.median([f[3] for f in fits]))})
    ref = rows[1]
    for r in rows:
        r["rest_s"] = r["epoch_s"] - r["steps_s"] - r["eval_s"]
        for k in ("epoch", "steps", "eval", "cpu", "first_epoch"):
            r[f"x {k}"] = r[f"{k}_s"] / ref[f"{k}_s"]
    return rows


def train_report(args):
    rng = np.random.default_rng(0)
    steps = []
    for _ in range(max(1, args.step_rounds)):
        steps += bench_train_step(args, rng)
    ratios = [r["x float twin"] for r in steps if r["contender"] == "binary"]
    cpu_ratios = [r["x cpu"] for r in steps if r["contender"] == "binary"]
    print("step ratio binary / float twin per round, wall: "
          + ", ".join(f"{v:.2f}" for v in ratios) + f" (median {np.median(ratios):.2f}); "
          "process CPU time: " + ", ".join(f"{v:.2f}" for v in cpu_ratios)
          + f" (median {np.median(cpu_ratios):.2f})")
    _common.table(steps, ["op", "shape", "contender", "ms", "x float twin", "cpu_ms", "x cpu"])
    if args.fits < 1:
        return {"step": steps, "step_ratios": ratios, "step_cpu_ratios": cpu_ratios}
    epochs = bench_train_epoch(args)
    print()
    _common.table(epochs, ["op", "shape", "contender", "epoch_s", "x epoch", "steps_s",
                           "x steps", "eval_s", "x eval", "rest_s", "cpu_s", "x cpu",
                           "first_epoch_s", "x first_epoch", "val_acc"])
    return {"step": steps, "step_ratios": ratios, "step_cpu_ratios": cpu_ratios,
            "epoch": epochs}


def inner_loops():
    """The innermost loop (the block with the most popcounts) of each GEMM kernel, as compiled
    here; the hybrid kernel's packing of a has popcounts too, fewer."""
    import llvmlite.binding as llvm
    from numba import types
    from numba.core import config
    from cdl.kernels import _binary_hybrid as H
    from cdl.kernels import _binary_tiles as T
    u2 = types.Array(types.uint64, 2, "C")
    i32 = types.Array(types.int32, 2, "C")
    u3 = types.Array(types.uint64, 3, "C")
    i1 = types.Array(types.int64, 1, "C")
    i64 = types.int64
    sigs = {"_gemm_tiled (tiled)": (T._gemm_tiled, (u2, u3, i64, i32, i64, i64, i64, i64)),
            "_gemm_hybrid (hybrid)": (H._gemm_hybrid, (u2, u3, i1, i64, i32, i64, i64, i64)),
            "_gemm_panels (scalar)": (T._gemm_panels, (u2, u3, i64, i32, i64, i64)),
            "_gemm_rows (vector)": (T._gemm_rows, (u2, u2, i64, i32, i64, i64))}
    cpu = config.CPU_NAME or llvm.get_host_cpu_name()
    for name, (fn, sig) in sigs.items():
        fn.compile(sig)
        lines = fn.inspect_asm(sig).splitlines()
        hits = [i for i, l in enumerate(lines)
                if any(op in l for op in ("popcnt", "vpshufb", "vpopcntq"))]
        blocks = set()
        for h in hits:
            start = max(j for j in range(h) if lines[j].startswith(".LBB"))
            end = min(j for j in range(h, len(lines)) if lines[j].strip().startswith("j"))
            blocks.add((start, end))
        start, end = max(blocks, key=lambda b: sum(b[0] <= h <= b[1] for h in hits))
        loop = lines[start:end + 1]
        count = {op: sum(l.split()[0].startswith(op) for l in loop if l.strip() and not l.startswith("."))
                 for op in ("popcnt", "vpopcnt", "vpshufb", "vpsadbw", "xor", "andn", "vpxor", "vpaddb",
                            "vpaddq", "vpbroadcastq", "mov")}
        print(f"--- {name} on {cpu}: {len(loop) - 1} instructions in the inner loop; "
              + ", ".join(f"{k} {v}" for k, v in count.items() if v))
        print("\n".join(loop))


def asm_report():
    """inner_loops() for this CPU and for ICELAKE, each in a subprocess with an empty
    Numba cache (code loaded from the cache cannot be inspected)."""
    import subprocess
    import tempfile
    for target in ({}, {"NUMBA_CPU_NAME": ICELAKE[0], "NUMBA_CPU_FEATURES": ICELAKE[1]}):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, **target)
            subprocess.run([sys.executable, os.path.abspath(__file__), "--asm-here"], env=env,
                           check=True)


def main():
    if "--asm-here" in sys.argv:
        return inner_loops()
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--asm", action="store_true", help="print the GEMM kernels' inner loops")
    p.add_argument("--train", action="store_true",
                   help="BinaryMLP training step and epochs vs the float twin")
    p.add_argument("--step-rounds", type=int, default=3,
                   help="--train: interleaved step measurements (a ratio each)")
    p.add_argument("--epoch-images", type=int, default=10000, help="--train: images per epoch")
    p.add_argument("--epochs", type=int, default=2, help="--train: epochs per fit")
    p.add_argument("--fits", type=int, default=2, help="--train: fits of each model (0: steps only)")
    args = p.parse_args()
    if args.asm:
        return asm_report()
    if args.device != "cpu":
        p.error("bench/binary.py measures the CPU kernels only (no CUDA binary kernels yet)")
    threads = _common.set_threads(args.threads)
    from cdl.kernels import binary as K
    rng = np.random.default_rng(0)
    info = _common.machine()
    _common.print_machine(info)
    print(f"threads {threads}, gemm variant on this CPU: {K.gemm_variant()}, load average "
          f"{os.getloadavg()[0]:.2f}")
    if args.train:
        payload = train_report(args)
        path = _common.save("binary_train", {"threads": threads, "load_average":
                                             os.getloadavg()[0], **payload}, args.json)
        print(f"load average after: {os.getloadavg()[0]:.2f}\nwrote {path}")
        return
    gemm = bench_gemm(args, rng)
    _common.table(gemm, ["op", "shape", "contender", "ms", "GOPS", "x sgemm", "first_ms"])
    inference, sizes = bench_inference(args, rng)
    print()
    _common.table(inference, ["op", "shape", "contender", "ms", "img/s", "x float twin",
                              "first_ms"])
    print()
    _common.table(sizes, ["model", "packed_bytes", "float_bytes", "ratio"])
    path = _common.save("binary", {"threads": threads, "gemm_variant": K.gemm_variant(),
                                   "load_average": os.getloadavg()[0], "gemm": gemm,
                                   "inference": inference, "bytes": sizes}, args.json)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
