"""One training epoch of DeepConvNet (cdl vs PyTorch), peak memory, inference throughput.

    python bench/epoch.py [--threads 2] [--batches 600] [--quick] [--no-memory]

Training: the book's DeepConvNet (cdl.models.DeepConvNet and the same
architecture written in torch.nn below) on 60,000 Fashion-MNIST images
(random images of that shape when the data set is not installed), batch
100, Adam(lr=1e-3), both starting from the same data order. The steps are
interleaved, one cdl step then one torch step, each timed with
perf_counter, so a noisy neighbour hits both alike; the epoch time is the
sum of the step times. --batches N times N steps of each and scales the
sum to 600 (a quick estimate).

Peak memory: each framework trains in its own child process (this script
with --memory-child). After the imports, the data, the model and two
warm-up steps on 2-image batches (JIT compilation and library set-up, with
almost no activation memory) the child records its resident set, resets
the kernel's high-water mark (writing 5 to /proc/self/clear_refs) and
trains on batches of 100; peak = VmHWM - resident set before, the memory
the training steps needed (activations, gradients, optimizer state,
workspaces), without the libraries and the data. Linux only; elsewhere
the memory columns are left out.

Inference: images/s of DeepConvNet and ResNet (cdl.models.ResNet and its
torch twin) in inference mode, batches of 500, interleaved.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import _tables as B  # noqa: E402

EPOCH_STEPS = 600


def _status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def memory_child(framework, steps, threads):
    """Train ``steps`` steps in this process; print {"before", "peak", "hwm"} in bytes."""
    _common.set_threads(threads)
    x, t, _ = B.training_data()
    trainer = B.CdlTrainer() if framework == "cdl" else B.TorchTrainer(_common.torch_or_none())
    batches = B.batch_order(len(x), steps)
    for _ in range(2):  # warm-up on 2 images: compiles and initialises, allocates little
        trainer.step(x[:2], t[:2])
    before = _status()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    for idx in batches:
        trainer.step(x[idx], t[idx])
    hwm = _status()["VmHWM"]
    print(json.dumps({"before": before, "hwm": hwm, "peak": hwm - before}))


def measure_memory(framework, steps, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", framework,
           "--batches", str(steps), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=EPOCH_STEPS, help="training steps per framework")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--memory-child", choices=["cdl", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        return memory_child(args.memory_child, args.batches, args.threads)
    steps = min(args.batches, 60) if args.quick else args.batches
    threads = _common.set_threads(args.threads)
    torch = _common.torch_or_none()
    _common.print_machine()
    row = B.training_row(steps, torch, EPOCH_STEPS)
    scale = EPOCH_STEPS / steps
    if not args.no_memory and sys.platform.startswith("linux"):
        mem_steps = min(steps, 30)
        for name in ["cdl"] + (["torch"] if torch is not None else []):
            m = measure_memory(name, mem_steps, threads)
            row[f"{name} peak MB"] = m["peak"] / 2**20
            row[f"{name} rss MB"] = m["hwm"] / 2**20
        if torch is not None:
            row["peak cdl/torch"] = row["cdl peak MB"] / row["torch peak MB"]
    print(f"training, batch {B.BATCH}, Adam, {steps} interleaved steps each"
          + (f", epoch = sum x {scale:g}" if scale != 1 else ""))
    _common.table([row], B.TRAIN_COLUMNS + ["cdl first s", "cdl peak MB", "torch peak MB",
                                            "peak cdl/torch", "cdl rss MB", "torch rss MB"])
    print("peak MB: high-water resident set during the steps minus the resident set before them "
          "(child process per framework); rss MB: that high-water mark itself")
    inf = B.inference_rows(torch, 3 if args.quick else args.repeat,
                           1 if args.quick else args.warmup)
    print("inference (cdl predict / torch eval + no_grad):")
    _common.table(inf, B.INFERENCE_COLUMNS)
    path = _common.save("epoch", {"threads": threads, "train": row, "inference": inf}, args.json)
    print(f"wrote {path}")
    return row, inf


if __name__ == "__main__":
    main()
