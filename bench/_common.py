"""Shared helpers of the bench scripts: arguments, interleaved timing, machine line, JSON.

Every script compares its contenders interleaved in one process (round-robin,
so a noisy neighbour hits all of them alike), reports the median of
``time.perf_counter`` runs and ratios, and prints the machine it ran on.
"""
import argparse
import json
import os
import time

# One implementation of threads, machine line, timing, tables and the torch probe, shared
# with `cdl bench`.
from cdl.benchmarks import (cpu_description, geomean, interleaved, machine,  # noqa: F401
                            numba_threading_layer, set_threads, table, torch_or_none)

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


def print_machine(info=None):
    info = info or machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))


def save(topic, payload, path=None):
    """Write payload (with the machine description) as JSON; returns the path."""
    path = path or os.path.join(RESULTS, f"{topic}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    payload = {"topic": topic, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
               **payload}
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    return path
