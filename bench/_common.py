"""Shared helpers of the bench scripts: arguments, interleaved timing, machine line, JSON.

Every script compares its contenders interleaved in one process (round-robin,
so a noisy neighbour hits all of them alike), reports the median of
``time.perf_counter`` runs and ratios, and prints the machine it ran on.
"""
import argparse
import json
import os
import platform
import statistics
import time

# torch, when installed, is imported before cdl: cdl sets OMP_WAIT_POLICY=PASSIVE for its
# own OpenMP runtime (see cdl/__init__.py), and torch's bundled libgomp, a separate copy,
# reads the environment once when it loads. Importing it first lets PyTorch run with its
# own default policy, as a PyTorch user gets it (PASSIVE slows its 1x1 conv about 1.8x).
try:
    import torch as _torch
except ImportError:
    _torch = None

import cdl  # noqa: E402,F401  (sets cdl's OpenMP policy before any Numba kernel loads libgomp)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parser(description):
    """argparse with the flags every bench script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeat", type=int, default=10, help="timed runs per contender")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (JIT, caches)")
    p.add_argument("--quick", action="store_true", help="fewer shapes and runs")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every contender (default: all cores)")
    p.add_argument("--json", default=None, help="where to write results (default bench/results/)")
    return p


def set_threads(n):
    """Use n threads in Numba, BLAS (threadpoolctl) and torch alike; returns n."""
    import numba
    n = n or os.cpu_count()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass
    return n


def torch_or_none():
    """The torch module when installed (imported at the top of this module), else None."""
    return _torch


def numba_threading_layer():
    """The threading layer Numba actually uses; runs a tiny parallel kernel to find out."""
    import numba
    import numpy as np
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        @numba.njit(parallel=True)
        def probe(a):
            for i in numba.prange(a.size):
                a[i] = i
        probe(np.zeros(4))
        return numba.threading_layer()


def cpu_description():
    """'model name | flags of interest' from /proc/cpuinfo (or platform on other OSes)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                        "avx512_vpopcntdq", "avx512_vnni", "popcnt") if f in flags]
    return f"{model} [{' '.join(simd)}]"


def machine():
    """A dict describing the machine and library versions, printed and saved with results."""
    import numba
    import numpy as np
    info = {"cpu": cpu_description(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__,
            "numba_threads": numba.get_num_threads(), "numba_layer": numba_threading_layer(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    try:
        from threadpoolctl import threadpool_info
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if blas:
            info["blas"] = f"{blas[0].get('internal_api')} {blas[0].get('version')} " \
                           f"{blas[0].get('architecture')} x{blas[0].get('num_threads')}"
    except ImportError:
        pass
    try:
        import torch
        info["torch"] = f"{torch.__version__} x{torch.get_num_threads()}"
    except ImportError:
        info["torch"] = None
    if "OPENBLAS_CORETYPE" in os.environ:
        info["OPENBLAS_CORETYPE"] = os.environ["OPENBLAS_CORETYPE"]
    return info


def print_machine(info=None):
    info = info or machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))


def interleaved(contenders, repeat, warmup, setup=None):
    """Median seconds per contender, timed round-robin.

    contenders: {name: zero-argument callable}. Warm-up calls come first;
    the first warm-up call of each is reported separately as its compile/first
    time. setup (optional) runs before every timed call, untimed.
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
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}, first


def geomean(values):
    values = [v for v in values if v and v > 0]
    return statistics.geometric_mean(values) if values else float("nan")


def table(rows, columns):
    """Print rows (dicts) as an aligned table with the given columns."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def save(topic, payload, path=None):
    """Write payload (with the machine description) as JSON; returns the path."""
    path = path or os.path.join(RESULTS, f"{topic}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    payload = {"topic": topic, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
               **payload}
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    return path
