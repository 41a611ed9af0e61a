"""cdl beside other libraries in one process: NumPy's BLAS and PyTorch just before or after it.

    python bench/neighbours.py [--repeat 20] [--threads 2] [--quick]

Libraries keep worker threads that spin for a while after a call before they
sleep (OpenBLAS about 140 ms, OpenMP runtimes less): whatever runs next on
the same cores shares them with the spinning threads. Each round times, after
0.3 s of quiet (every library's threads asleep; the main thread busy-waits,
as cdl.benchmarks.interleaved explains), one call of each target right after
one call of each neighbour (untimed), or after nothing:

  targets and neighbours: "cdl step" (a DeepConvNet training step, batch 100,
  Adam), "cdl conv" (Conv2D forward + backward, 100x16x14x14 -> 32, 3x3),
  "sgemm" (NumPy float32 matmul 1024 x 1024 x 1024, OpenBLAS/MKL) and
  "torch conv" (the same convolution in PyTorch, forward + backward; when
  torch is installed).

The table gives each target's median time alone and, per neighbour, the
median right after it divided by the time alone: 1.0 means the neighbour
costs the target nothing. Every setting runs once per round, interleaved,
with the same thread count for every library (--threads, default all cores).
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import numpy as np  # noqa: E402

from cdl.benchmarks import pause  # noqa: E402

QUIET_S = 0.3  # longer than any library's spin (OpenBLAS: ~0.14 s)


def _cdl_calls(rng):
    import cdl
    from cdl import layers as L
    net = cdl.models.DeepConvNet(input_shape=(1, 28, 28), rng=0)
    opt = cdl.optim.Adam(lr=1e-3)
    x = rng.random((100, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 100)

    def step():
        net.loss(x, t)
        net.backward(input_grad=False)
        opt.update(net.params, net.grads)

    conv = L.Conv2D(16, 32, 3, pad=1, rng=0)
    xc = rng.standard_normal((100, 16, 14, 14)).astype(np.float32)
    dout = rng.standard_normal((100, 32, 14, 14)).astype(np.float32)

    def conv_call():
        conv.forward(xc, train=True)
        conv.backward(dout)
    return {"cdl step": step, "cdl conv": conv_call}


def _others(torch, rng):
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    b = rng.standard_normal((1024, 1024)).astype(np.float32)
    calls = {"sgemm": lambda: a @ b}
    if torch is not None:
        x = torch.randn(100, 16, 14, 14, requires_grad=True)
        w = torch.randn(32, 16, 3, 3, requires_grad=True)
        dout = torch.randn(100, 32, 14, 14)

        def torch_conv():
            torch.nn.functional.conv2d(x, w, padding=1).backward(dout)
        calls["torch conv"] = torch_conv
    return calls


def measure(calls, repeat, warmup):
    """{target: {"alone": s, neighbour: s}}, medians over rounds (each after QUIET_S)."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    settings = [(target, before) for target in calls
                for before in [None] + [n for n in calls if n != target]]
    times = {s: [] for s in settings}
    for _ in range(repeat):
        for target, before in settings:
            pause(QUIET_S)  # busy: a sleeping process pays to wake its threads (interleaved)
            if before is not None:
                calls[before]()
            t0 = time.perf_counter()
            calls[target]()
            times[target, before].append(time.perf_counter() - t0)
    out = {}
    for (target, before), v in times.items():
        out.setdefault(target, {})["alone" if before is None else before] = statistics.median(v)
    return out


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    threads = _common.set_threads(args.threads)
    torch = _common.torch_or_none()
    _common.print_machine()
    rng = np.random.default_rng(0)
    calls = {**_cdl_calls(rng), **_others(torch, rng)}
    repeat = 3 if args.quick else args.repeat
    med = measure(calls, repeat, 1 if args.quick else args.warmup)
    names = list(calls)
    rows = []
    for target in names:
        row = {"target": target, "alone ms": med[target]["alone"] * 1e3}
        for n in names:
            if n != target:
                row[f"after {n}"] = med[target][n] / med[target]["alone"]
        rows.append(row)
    print(f"threads={threads}; median of {repeat} rounds; 'after X': time right after X / "
          f"time alone (1.0: X costs nothing)")
    _common.table(rows, ["target", "alone ms"] + [f"after {n}" for n in names])
    path = _common.save("neighbours", {"threads": threads, "rows": rows}, args.json)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
