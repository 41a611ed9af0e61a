"""Training throughput on the GPU: cdl's CUDA path vs its CPU path vs PyTorch on the same GPU.

    python bench/cuda.py [--batch 256] [--steps 20] [--warmup 3] [--quick]

For DeepConvNet and ResNet (cdl.models, 28x28 single-channel input), images
per second of whole training steps (forward, loss, backward, Adam update):

  cdl cuda    the model moved with ``net.to_device()``, each batch copied to
              the GPU, the loss the only value copied back (numba.cuda kernels)
  cdl cpu     the same model on the CPU (all cores)
  torch cuda  the same architecture in torch.nn on the GPU, when torch with
              CUDA is installed

Each contender is timed over ``--steps`` steps after ``--warmup`` untimed ones
(kernel compilation), synchronizing the device before reading the clock.
Targets (issue 19): cdl cuda >= 20x cdl cpu on DeepConvNet at batch 256, and
<= 2x torch cuda's time. Then ``binary_matmul`` on the GPU against a float32
GEMM of the same shape on the GPU (the GEMM cdl's CUDA path uses).

Prints the device, the machine and the library versions with the table and
writes bench/results/cuda.json. Run it on a machine with a CUDA GPU; with
NUMBA_ENABLE_CUDASIM=1 it runs on the simulator at toy sizes (--quick) to
check the script itself, and the figures then mean nothing.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import numpy as np  # noqa: E402

import cdl  # noqa: E402
import _tables as B  # noqa: E402


def _device_line():
    from numba import cuda
    if cuda.is_available() and not _simulated():
        dev = cuda.get_current_device()
        return f"{dev.name.decode() if isinstance(dev.name, bytes) else dev.name} " \
               f"(compute {dev.compute_capability[0]}.{dev.compute_capability[1]})"
    return "numba CUDA simulator (figures meaningless)"


def _simulated():
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def _sync():
    from numba import cuda
    cuda.synchronize()


def _toy(rng=None):
    """Conv-ReLU-Affine on 1x4x4: enough to run every step of the script on the simulator."""
    from cdl import Sequential, layers as L
    return Sequential([L.Conv2D(1, 2, 3, pad=1, rng=rng), L.ReLU(), L.Flatten(),
                       L.Affine(32, 3, rng=rng)], loss=L.SoftmaxCrossEntropy())


def cdl_images_per_s(build, device, batch, steps, warmup, x, t):
    from cdl import optim
    net = build(rng=0)
    if device == "cuda":
        net.to_device()
    opt = optim.Adam(lr=1e-3)
    order = np.random.default_rng(0).permutation(len(x))

    def step(i):
        idx = order[(i * batch) % len(x):(i * batch) % len(x) + batch]
        xb, tb = x[idx], t[idx]
        if device == "cuda":
            xb, tb = cdl.cuda.to_device(xb), cdl.cuda.to_device(tb)
        net.loss(xb, tb)
        net.backward(input_grad=False)
        opt.update(net.params, net.grads)

    start = time.perf_counter()
    for i in range(warmup):
        step(i)
    if device == "cuda":
        _sync()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    if device == "cuda":
        _sync()
    return steps * batch / (time.perf_counter() - start), first


def torch_images_per_s(torch, make, batch, steps, warmup, x, t):
    dev = torch.device("cuda")
    net = make(torch).to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ts = torch.from_numpy(x).to(dev), torch.from_numpy(t).to(dev)

    def step(i):
        lo = (i * batch) % (len(x) - batch + 1)
        opt.zero_grad(set_to_none=True)
        loss_fn(net(xs[lo:lo + batch]), ts[lo:lo + batch]).backward()
        opt.step()

    for i in range(warmup):
        step(i)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def binary_row(repeat, quick):
    """binary_matmul vs a float32 GEMM of the same shape, both on the GPU."""
    from cdl import bitops
    from cdl.backend import kernels_for
    M, N, K = (8, 8, 128) if quick else (1024, 1024, 4096)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)
    pa, pb = cdl.cuda.to_device(bitops.pack_bits(a)), cdl.cuda.to_device(bitops.pack_bits(b))
    da, db = cdl.cuda.to_device(a), cdl.cuda.to_device(np.ascontiguousarray(b.T))
    Kd = kernels_for(da)
    y = Kd.empty((M, N), np.float32)

    def gemm():
        Kd.affine_forward(da, db, None, y)

    def bmm():
        bitops.binary_matmul(pa, pb, K)

    out = {}
    for name, fn in (("float32 GEMM", gemm), ("binary_matmul", bmm)):
        fn()
        _sync()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            _sync()
            times.append(time.perf_counter() - start)
        out[name] = float(np.median(times))
    return {"shape": f"{M}x{N}x{K}", "gemm ms": out["float32 GEMM"] * 1e3,
            "binary ms": out["binary_matmul"] * 1e3,
            "speed-up": out["float32 GEMM"] / out["binary_matmul"]}


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)
    if not cdl.cuda.is_available():
        print("bench/cuda.py: no CUDA GPU (numba.cuda.is_available() is False); run it on a "
              "machine with one, or with NUMBA_ENABLE_CUDASIM=1 --quick to check the script")
        return 2
    quick = args.quick or _simulated()
    batch, steps, warmup = (4, 2, 1) if quick else (args.batch, args.steps, args.warmup)
    threads = _common.set_threads(args.threads)
    _common.print_machine()
    print(f"device: {_device_line()}")
    torch = _common.torch_or_none()
    has_torch_cuda = torch is not None and torch.cuda.is_available()
    from cdl.models import DeepConvNet, ResNet
    if _simulated():  # the simulator runs each GPU thread in Python: a toy model on 4x4
        rng = np.random.default_rng(0)
        x, t, data = rng.random((8, 1, 4, 4), dtype=np.float32), rng.integers(0, 3, 8), "toy"
        models = (("toy CNN (simulator check)", _toy, None),)
    else:
        x, t, data = B.training_data(n=max(batch * (steps + warmup), 512))
        models = (("DeepConvNet", DeepConvNet, B.torch_deep_convnet),
                  ("ResNet", ResNet, B.torch_resnet))
    rows = []
    for name, build, make in models:
        row = {"model": name, "batch": batch, "data": data}
        row["cdl cuda img/s"], row["cdl cuda first s"] = cdl_images_per_s(
            build, "cuda", batch, steps, warmup, x, t)
        cpu_steps = max(1, steps // 4)
        row["cdl cpu img/s"], _ = cdl_images_per_s(build, "cpu", batch, cpu_steps, 1, x, t)
        row["cuda/cpu"] = row["cdl cuda img/s"] / row["cdl cpu img/s"]
        if has_torch_cuda and make is not None:
            row["torch cuda img/s"] = torch_images_per_s(torch, make, batch, steps, warmup, x, t)
            row["torch time / cdl time"] = row["cdl cuda img/s"] / row["torch cuda img/s"]
        rows.append(row)
    _common.table(rows, ["model", "batch", "cdl cuda img/s", "cdl cpu img/s", "cuda/cpu",
                         "torch cuda img/s", "torch time / cdl time", "cdl cuda first s"])
    brow = binary_row(3 if quick else args.repeat, quick)
    print("binary_matmul vs float32 GEMM on the GPU:")
    _common.table([brow], ["shape", "gemm ms", "binary ms", "speed-up"])
    path = _common.save("cuda", {"device": _device_line(), "threads": threads, "train": rows,
                                 "binary": brow}, args.json)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
