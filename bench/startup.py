"""Start-up cost: `import cdl`, and the first training steps with a cold and a warm cache.

    python bench/startup.py [--repeat 10] [--batch 100] [--no-epoch] [--quick]

Import: the median over --repeat fresh processes of the time `import cdl` takes
inside the process (perf_counter around the import statement), next to
`import numpy` and `import numba` in the same interleaved loop.

First use: DeepConvNet on 28x28 images (batch --batch, Adam), two training
steps and one inference batch, in a fresh process each time:

- cold, in place: empty Numba cache (NUMBA_CACHE_DIR) and empty tuner cache
  (CDL_CACHE_DIR), both fresh temporary folders, and CDL_COMPILE_AHEAD=0: every
  kernel the steps run compiles in the process;
- cold: the same with compiling ahead (the default, cdl.kernels.ahead): the
  direct and Winograd kernels compile in a second process while "gemm" runs;
  "ahead done" is when that process has finished, counted from the first step
  (the child waits for it after its timings, so that the next runs are warm);
- tuner cold: the Numba cache the cold run filled, a fresh tuner cache;
- warm: both caches as the runs before left them.

Each child reports its phases (import cdl, import numba, model, step 1, step 2,
inference; "first use" is their sum after the import of cdl), how many kernel
specializations it compiled (numba:compile events, callees compiled inside a
caller included) and loaded from the cache (the dispatchers' cache hits), the
seconds inside the outermost compilations and the slowest of them. The first
epoch is `cdl train --epochs 1` on the digits (the CLI's default model), cold
and warm, timed as the whole process's wall time; after each, the time until a
compiling-ahead process it left running is done (another one waits for its lock,
which also compiles whatever the first one had not finished). Every child's CPU seconds (all
its threads and child processes; "process cpu") come with its wall time (which
includes the wait for compiling ahead): compilation is serial, so on
a loaded machine the CPU seconds compare runs more steadily than the wall times.
Absolute times depend on the machine: the machine line comes first.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_IMPORTS = {"cdl": "import cdl", "numpy": "import numpy", "numba": "import numba"}


def _import_seconds(statement):
    code = ("import time; t = time.perf_counter(); " + statement
            + "; print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return float(out)


def import_times(repeat):
    """Median seconds of each statement in _IMPORTS, fresh processes, interleaved."""
    runs = {name: [] for name in _IMPORTS}
    for _ in range(repeat):
        for name, statement in _IMPORTS.items():
            runs[name].append(_import_seconds(statement))
    return {name: statistics.median(v) for name, v in runs.items()}


def _loaded_from_cache():
    """Kernel specializations this process loaded from Numba's cache (the cache hits of
    every cdl dispatcher alive)."""
    import gc
    from numba.core.dispatcher import Dispatcher
    return sum(sum(d.stats.cache_hits.values()) for d in gc.get_objects()
               if isinstance(d, Dispatcher) and d.py_func.__module__.startswith("cdl.")
               and d._cache is not None)


class _CompileClock:
    """Numba's numba:compile events: how many specializations compiled (callees compiled
    inside a caller's compilation too), the seconds inside the outermost ones, and the
    slowest functions (outermost, with what they compiled inside)."""

    def __init__(self):
        from numba.core import event
        clock = self

        class Listener(event.Listener):
            def on_start(self, ev):
                clock.depth += 1
                clock.count += 1
                if clock.depth == 1:
                    clock.t0 = time.perf_counter()

            def on_end(self, ev):
                clock.depth -= 1
                if clock.depth == 0:
                    dt = time.perf_counter() - clock.t0
                    clock.seconds += dt
                    disp = ev.data["dispatcher"]
                    clock.top.append((dt, f"{disp.py_func.__module__}.{disp.__name__}"))

        self.depth = self.count = 0
        self.t0 = self.seconds = 0.0
        self.top = []
        event.register("numba:compile", Listener())


def steps_child(batch):
    """The first-use run, in this process: prints one JSON line of phase times and counts."""
    t = time.perf_counter()
    import cdl
    out = {"import": time.perf_counter() - t}
    import numpy as np
    t = time.perf_counter()
    clock = _CompileClock()  # imports Numba, which the first kernel would import anyway
    out["import numba"] = time.perf_counter() - t
    t = time.perf_counter()
    cdl.seed(0)
    net = cdl.models.DeepConvNet(input_shape=(1, 28, 28), num_classes=10, rng=0)
    opt = cdl.optim.Adam(lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    out["model"] = time.perf_counter() - t
    first = time.perf_counter()
    for i in (1, 2):
        t = time.perf_counter()
        net.loss(x, labels)
        net.backward()
        opt.update(net.params, net.grads)
        out[f"step {i}"] = time.perf_counter() - t
    t = time.perf_counter()
    net.predict(x)
    out["inference"] = time.perf_counter() - t
    out["compiled"], out["loaded"] = clock.count, _loaded_from_cache()
    out["compile s"] = clock.seconds
    out["slowest"] = [f"{name} {dt:.2f}" for dt, name in sorted(clock.top, reverse=True)[:8]]
    from cdl.kernels import ahead  # the kernels compiling in a second process, if any
    out["ahead"] = ahead.running(x.dtype)
    ahead.wait()
    out["ahead done"] = time.perf_counter() - first
    print(json.dumps(out))


def _cpu_of_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _child(args, numba_dir, tuner_dir, **more_env):
    """Wall seconds, CPU seconds (all its threads and children) and stdout of a fresh child
    process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_dir, CDL_CACHE_DIR=tuner_dir, **more_env)
    t, cpu = time.perf_counter(), _cpu_of_children()
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - t, _cpu_of_children() - cpu
    if res.returncode:
        raise RuntimeError(f"child {args} failed:\n{res.stderr[-3000:]}")
    return wall, cpu, res.stdout


def first_use(batch, root):
    """Rows for the cold (without compiling ahead, then with), tuner-cold and warm runs of
    steps_child."""
    numba_dir, tuner_dir = os.path.join(root, "numba"), os.path.join(root, "tuner")
    runs = [("cold, in place", os.path.join(root, "numba-0"), os.path.join(root, "tuner-0"),
             "0"),
            ("cold", numba_dir, tuner_dir, "1"),
            ("tuner cold", numba_dir, os.path.join(root, "tuner-2"), "1"),
            ("warm", numba_dir, tuner_dir, "1")]
    rows = []
    for name, numba, tuner, ahead in runs:
        wall, cpu, out = _child([os.path.abspath(__file__), "--steps-child", "--batch",
                                 str(batch)], numba, tuner, CDL_COMPILE_AHEAD=ahead)
        row = {"run": name, **json.loads(out.strip().splitlines()[-1]), "process": wall,
               "process cpu": cpu}
        row["first use"] = sum(row[k] for k in ("import numba", "model", "step 1", "step 2",
                                                 "inference"))
        rows.append(row)
    return rows


def first_epoch(root):
    """Rows: `cdl train --epochs 1` (digits, default model), cold then warm caches."""
    numba_dir, tuner_dir = os.path.join(root, "numba-epoch"), os.path.join(root, "tuner-epoch")
    rows = []
    for name in ("cold", "warm"):
        wall, cpu, _ = _child(["-m", "cdl.cli", "train", "--epochs", "1"], numba_dir,
                              tuner_dir)
        # a compiling-ahead process the run left behind finishes before the next run:
        # another one waits for its lock, then finds everything compiled
        after, after_cpu, _ = _child(["-m", "cdl.kernels.ahead", "--nice", "0"], numba_dir,
                                     tuner_dir)
        rows.append({"run": name, "process": wall, "process cpu": cpu,
                     "compiling ahead after it": after, "its cpu": after_cpu})
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--steps-child" in argv:  # before _common, which imports cdl: the child times that
        child = argparse.ArgumentParser()
        child.add_argument("--steps-child", action="store_true")
        child.add_argument("--batch", type=int)
        return steps_child(child.parse_args(argv).batch)
    sys.path.insert(0, _HERE)
    import _common
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=100, help="images per training step")
    p.add_argument("--no-epoch", action="store_true", help="skip the `cdl train` epoch runs")
    args = p.parse_args(argv)
    _common.print_machine()
    repeat = 3 if args.quick else args.repeat
    imports = import_times(repeat)
    print(f"import, median of {repeat} fresh processes (s):")
    _common.table([imports], list(_IMPORTS))
    root = tempfile.mkdtemp(prefix="cdl-startup-")
    try:
        rows = first_use(args.batch, root)
        epoch = [] if args.no_epoch or args.quick else first_epoch(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"first use: DeepConvNet 1x28x28, batch {args.batch}, 2 training steps + inference, "
          "fresh process each (s; compiled/loaded: kernel specializations)")
    _common.table(rows, ["run", "import", "import numba", "model", "step 1", "step 2",
                         "inference", "first use", "compile s", "compiled", "loaded",
                         "ahead done", "process", "process cpu"])
    for row in rows[:2]:
        print(f"slowest compilations, {row['run']} (s): " + ", ".join(row["slowest"]))
    in_place, cold, warm = rows[0], rows[1], rows[-1]
    summary = {"cold - warm first use s": cold["first use"] - warm["first use"],
               "cold in place - warm first use s": in_place["first use"] - warm["first use"],
               "cold - warm process cpu s": cold["process cpu"] - warm["process cpu"],
               "tuner cold - warm s": rows[2]["first use"] - warm["first use"]}
    if epoch:
        print("first epoch: `cdl train --epochs 1` (digits), whole process wall time (s)")
        _common.table(epoch, ["run", "process", "process cpu", "compiling ahead after it",
                              "its cpu"])
        summary["cold - warm epoch s"] = epoch[0]["process"] - epoch[1]["process"]
        summary["cold - warm epoch cpu s"] = epoch[0]["process cpu"] - epoch[1]["process cpu"]
    print(", ".join(f"{k}: {v:.2f}" for k, v in summary.items()))
    path = _common.save("startup", {"batch": args.batch, "import": imports, "first_use": rows,
                                    "first_epoch": epoch, "summary": summary}, args.json)
    print(f"wrote {path}")
    return imports, rows, epoch


if __name__ == "__main__":
    main()
