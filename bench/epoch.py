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
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (imports torch, if present, before cdl: see _common)

import numpy as np  # noqa: E402

BATCH, EPOCH_STEPS = 100, 600


def load_data(n=60000, seed=0):
    """(x, t, name): Fashion-MNIST's training images, or random ones of that shape."""
    try:
        from cdl.data import load_fashion_mnist
        (x, t), _ = load_fashion_mnist()
        return x[:n], t[:n].astype(np.int64), "Fashion-MNIST"
    except (ImportError, OSError, ValueError):
        rng = np.random.default_rng(seed)
        return (rng.random((n, 1, 28, 28), dtype=np.float32),
                rng.integers(0, 10, n).astype(np.int64), "random 28x28")


def torch_deep_convnet(torch):
    """DeepConvNet in torch.nn, layer for layer as cdl.models.DeepConvNet, He init."""
    nn = torch.nn
    layers, cin = [], 1
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


def torch_resnet(torch, channels=(16, 32, 64), blocks=1):
    """cdl.models.ResNet's architecture in torch.nn (basic blocks, projection shortcuts)."""
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

    layers, cin = [nn.Conv2d(1, channels[0], 3, 1, 1, bias=False),
                   nn.BatchNorm2d(channels[0]), nn.ReLU()], channels[0]
    for stage, cout in enumerate(channels):
        for b in range(blocks):
            layers.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


class CdlTrainer:
    """One DeepConvNet training step per call, the book's way."""

    def __init__(self, seed=0):
        import cdl
        from cdl import optim
        from cdl.models import DeepConvNet
        cdl.seed(seed)
        self.net = DeepConvNet(rng=seed)
        self.opt = optim.Adam(lr=1e-3)

    def step(self, x, t):
        loss = self.net.loss(x, t)
        self.net.backward()
        self.opt.update(self.net.params, self.net.grads)
        return loss


class TorchTrainer:
    def __init__(self, torch, seed=0):
        torch.manual_seed(seed)
        self.torch = torch
        self.net = torch_deep_convnet(torch)
        self.net.train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def step(self, x, t):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(self.torch.from_numpy(x)), self.torch.from_numpy(t))
        loss.backward()
        self.opt.step()
        return loss.item()


def _batches(n, steps, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    return [order[(i * BATCH) % n:(i * BATCH) % n + BATCH] for i in range(steps)]


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
    x, t, _ = load_data()
    trainer = CdlTrainer() if framework == "cdl" else TorchTrainer(_common.torch_or_none())
    batches = _batches(len(x), steps)
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


def inference(torch, repeat, warmup, batch=500):
    """images/s of DeepConvNet and ResNet in inference mode, cdl vs torch, interleaved."""
    from cdl.models import DeepConvNet, ResNet
    x = np.random.default_rng(1).random((batch, 1, 28, 28), dtype=np.float32)
    rows = []
    for name, make, twin in [("DeepConvNet", DeepConvNet, torch_deep_convnet),
                             ("ResNet", ResNet, torch_resnet)]:
        net = make(rng=0)
        contenders = {"cdl": lambda: net.predict(x)}
        if torch is not None:
            tnet = twin(torch).eval()
            tx = torch.from_numpy(x)

            def run_torch():
                with torch.no_grad():
                    tnet(tx)

            contenders["torch"] = run_torch
        med, _ = _common.interleaved(contenders, repeat, warmup)
        row = {"model": name, "batch": batch, "cdl img/s": batch / med["cdl"]}
        if "torch" in med:
            row.update({"torch img/s": batch / med["torch"], "cdl/torch time": med["cdl"] / med["torch"]})
        rows.append(row)
    return rows


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=EPOCH_STEPS, help="training steps per framework")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--memory-child", choices=["cdl", "torch"], help=argparse_hidden())
    args = p.parse_args(argv)
    if args.memory_child:
        return memory_child(args.memory_child, args.batches, args.threads)
    steps = min(args.batches, 60) if args.quick else args.batches
    threads = _common.set_threads(args.threads)
    torch = _common.torch_or_none()
    _common.print_machine()
    x, t, data = load_data()
    trainers = {"cdl": CdlTrainer()}
    if torch is not None:
        trainers["torch"] = TorchTrainer(torch)
    batches = _batches(len(x), steps + 3)
    first = {}
    for name, tr in trainers.items():  # warm-up, first step timed apart (JIT caches)
        t0 = time.perf_counter()
        tr.step(x[batches[0]], t[batches[0]])
        first[name] = time.perf_counter() - t0
        for idx in batches[1:3]:
            tr.step(x[idx], t[idx])
    times = {name: [] for name in trainers}
    losses = {name: [] for name in trainers}
    for idx in batches[3:]:
        xb, tb = x[idx], t[idx]
        for name, tr in trainers.items():
            t0 = time.perf_counter()
            losses[name].append(tr.step(xb, tb))
            times[name].append(time.perf_counter() - t0)
    scale = EPOCH_STEPS / steps
    row = {"model": "DeepConvNet", "data": data, "steps": steps,
           "cdl epoch s": sum(times["cdl"]) * scale,
           "cdl step ms": float(np.median(times["cdl"])) * 1e3,
           "cdl first s": first["cdl"], "cdl last loss": float(np.mean(losses["cdl"][-20:]))}
    if "torch" in trainers:
        row.update({"torch epoch s": sum(times["torch"]) * scale,
                    "torch step ms": float(np.median(times["torch"])) * 1e3,
                    "cdl/torch": sum(times["cdl"]) / sum(times["torch"]),
                    "torch last loss": float(np.mean(losses["torch"][-20:]))})
    if not args.no_memory and sys.platform.startswith("linux"):
        mem_steps = min(steps, 30)
        for name in trainers:
            m = measure_memory(name, mem_steps, threads)
            row[f"{name} peak MB"] = m["peak"] / 2**20
            row[f"{name} rss MB"] = m["hwm"] / 2**20
        if "torch" in trainers:
            row["peak cdl/torch"] = row["cdl peak MB"] / row["torch peak MB"]
    print(f"training, batch {BATCH}, Adam, {steps} interleaved steps each"
          + (f", epoch = sum x {scale:g}" if scale != 1 else ""))
    cols = ["model", "data", "cdl epoch s", "torch epoch s", "cdl/torch", "cdl step ms",
            "torch step ms", "cdl peak MB", "torch peak MB", "peak cdl/torch", "cdl rss MB",
            "torch rss MB"]
    _common.table([row], [c for c in cols if c in row])
    print("peak MB: high-water resident set during the steps minus the resident set before them "
          "(child process per framework); rss MB: that high-water mark itself")
    inf = inference(torch, 3 if args.quick else args.repeat, 1 if args.quick else args.warmup)
    print("inference (predict / eval + no_grad), batch 500:")
    _common.table(inf, ["model", "batch", "cdl img/s", "torch img/s", "cdl/torch time"])
    path = _common.save("epoch", {"threads": threads, "train": row, "inference": inf}, args.json)
    print(f"wrote {path}")
    return row, inf


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
