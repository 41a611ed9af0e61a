"""Data-parallel scaling over MPI: measured on this machine with 1 and 2 ranks, modelled beyond.

    python bench/distributed.py [--quick] [--repeat 30] [--warmup 3] [--rounds 3] [--threads 1]

Measured (each configuration in its own ``mpiexec -n K`` job, the 1-rank and
2-rank jobs alternating ``--rounds`` times, medians over all steps):

  * DeepConvNet training throughput (images/s; batch 100 per rank, Adam, random
    28x28 images) with 1 rank and with 2 ranks, ``--threads`` threads per rank
    (default 1: 2 ranks of 1 thread against 1 rank of 1 thread), and the scaling
    efficiency throughput(2) / (2 throughput(1)) (weak scaling: the batch per rank
    is fixed, the global batch doubles);
  * the share of the 2-rank step spent waiting for the gradients' allreduce at the
    end of backward, with buckets started during backward (overlap) and without
    (everything started once backward ends), interleaved step by step in one job;
  * the allreduce latency and bandwidth between 2 ranks (8-byte and 4 MiB float32
    allreduces, the best of 3 runs) and the 1-rank forward / backward / update times of DeepConvNet and
    ResNet-20 (batch 64 per rank, 3x32x32).

Modelled (what cannot run here): ring allreduce of n bytes over p ranks takes

    T(p) = 2 (p - 1) alpha + 2 (p - 1) / p * n / beta

(reduce-scatter then allgather: 2(p-1) steps, each moving n/p bytes; alpha the
per-message latency, beta the bandwidth). With t the 1-rank step time and b its
backward part, the efficiency at p ranks is

    E(p) = t / (t + T(p))                         without overlap
    E(p) = t / (t + max(T(p) - b, T_last(p)))     buckets overlapped with backward

where T_last is the ring time of the last bucket (the first layers' gradients, ready
only when backward ends, so never hidden; GradSync's default buckets),

printed for p = 2, 8, 64, 512 with the alpha and beta measured here (shared memory
of one machine) and with an assumed 10 Gb/s Ethernet (alpha = 30 us, beta = 1.1 GB/s)
for ranks on different hosts.

Writes bench/results/distributed.json. The script starts the MPI jobs itself
(``--worker`` is the per-job part).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEEP_BATCH, RESNET_BATCH = 100, 64
RANKS_MODELLED = (2, 8, 64, 512)
ETHERNET = {"name": "10 GbE (assumed)", "alpha": 30e-6, "beta": 1.1e9}


# -- the per-job part (under mpiexec) ----------------------------------------------------

def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _parts(net, opt, x, t):
    """(forward+loss, backward, update) seconds of one step."""
    f = _time(lambda: net.loss(x, t))
    b = _time(lambda: net.backward(input_grad=False))
    u = _time(lambda: opt.update(net.params, net.grads))
    return f, b, u


def worker(args):
    import cdl
    from cdl import distributed, optim
    from cdl.distributed import training
    from cdl.models import DeepConvNet, resnet20
    from cdl.train import Trainer

    comm = distributed.init(threads=args.threads)
    rng = np.random.default_rng(comm.rank)
    x = rng.random((DEEP_BATCH, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, DEEP_BATCH)
    cdl.seed(0)
    net = DeepConvNet(rng=0)
    trainer = Trainer(net, optim.Adam(lr=1e-3), batch_size=DEEP_BATCH, comm=comm,
                      verbose=False, progress=False)
    out = {"ranks": comm.size, "threads": args.threads,
           "grad_bytes": int(sum(p.nbytes for p in net.params.values()))}
    if comm.size > 1:
        training.start(trainer)  # broadcast, GradSync on the model (as fit does)
    sync = trainer._sync
    for _ in range(args.warmup):
        trainer.step(x, t)
    steps = {"overlap": [], "no_overlap": []}  # 1 rank: all under "overlap" (nothing to sync)
    waits = {"overlap": [], "no_overlap": []}
    for i in range(args.repeat):
        mode = "overlap" if i % 2 == 0 or sync is None else "no_overlap"
        if sync is not None:
            sync.overlap = mode == "overlap"
            before = sync.wait_seconds
        comm.barrier()
        steps[mode].append(_time(lambda: trainer.step(x, t)))
        if sync is not None:
            waits[mode].append(sync.wait_seconds - before)
    out["deep_step"] = {k: v for k, v in steps.items() if v}
    out["deep_wait"] = {k: v for k, v in waits.items() if v}
    if comm.size > 1:
        training.stop(trainer)
        out["allreduce"] = _allreduce_costs(comm, args.repeat)
    else:
        out["deep_parts"] = [_parts(net, trainer.optimizer, x, t)
                             for _ in range(max(3, args.repeat // 3))]
        res = resnet20(rng=0)
        xr = rng.random((RESNET_BATCH, 3, 32, 32), dtype=np.float32)
        tr = rng.integers(0, 10, RESNET_BATCH)
        ropt = optim.Adam(lr=1e-3)
        _parts(res, ropt, xr, tr)  # warm-up
        out["resnet_parts"] = [_parts(res, ropt, xr, tr) for _ in range(args.resnet_steps)]
        out["resnet_grad_bytes"] = int(sum(p.nbytes for p in res.params.values()))
        out["deep_last_bucket"], out["resnet_last_bucket"] = _last_bucket(net), _last_bucket(res)
    if comm.rank == 0:
        with open(args.out, "w") as f:
            json.dump(out, f)


def _last_bucket(model):
    """Bytes of the bucket GradSync starts last (the one holding the first layer's grads)."""
    from cdl import _flatgrad
    from cdl.distributed.sync import DEFAULT_BUCKET_BYTES, buckets
    layout = _flatgrad.layout(model)
    last = min(buckets(layout, DEFAULT_BUCKET_BYTES), key=lambda b: b.start)
    return int((last.stop - last.start) * layout.buffers[last.buffer].dtype.itemsize)


def _allreduce_costs(comm, repeat):
    """Seconds of in-place float32 allreduces of 8 bytes and 4 MiB: the best of 3 runs'
    means (the interconnect's cost; a busy machine only adds to it)."""
    from mpi4py import MPI
    sizes = {"small": 2, "large": 1 << 20}  # float32 elements
    res = {}
    for name, n in sizes.items():
        a = np.ones(n, np.float32)
        runs = []
        reps = 200 if name == "small" else max(5, repeat)
        for _ in range(3):
            comm.barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                comm.mpi.Allreduce(MPI.IN_PLACE, a)
            runs.append((time.perf_counter() - t0) / reps)
        res[name] = {"bytes": int(a.nbytes), "seconds": float(min(runs))}
    return res


# -- the launcher ------------------------------------------------------------------------

def _mpiexec():
    import shutil
    here = os.path.dirname(sys.executable)
    exe = shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        sys.exit('bench/distributed.py: no mpiexec; pip install "cdl[mpi]"')
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    extra = ["--allow-run-as-root", "--oversubscribe"] if "Open MPI" in version else []
    return [exe, *extra]


def _job(ranks, args, tmp):
    out = os.path.join(tmp, f"job{ranks}.json")
    cmd = _mpiexec() + ["-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
                        "--out", out, "--repeat", str(args.repeat), "--warmup", str(args.warmup),
                        "--threads", str(args.threads), "--resnet-steps", str(args.resnet_steps)]
    subprocess.run(cmd, check=True, timeout=600)
    with open(out) as f:
        return json.load(f)


def ring_seconds(nbytes, p, alpha, beta):
    """Ring allreduce of nbytes over p ranks: 2(p-1) alpha + 2(p-1)/p nbytes / beta."""
    return 0.0 if p == 1 else 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta


def efficiency(step, backward, nbytes, last, p, alpha, beta, overlap):
    """step / (step + the allreduce time not hidden behind backward)."""
    comm = ring_seconds(nbytes, p, alpha, beta)
    exposed = max(comm - backward, ring_seconds(last, p, alpha, beta)) if overlap else comm
    return step / (step + exposed)


def _median(values):
    return float(np.median(values)) if values else float("nan")


def launcher(args):
    sys.path.insert(0, HERE)
    import _common
    one, two = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):  # alternate, so a noisy neighbour hits both alike
            one.append(_job(1, args, tmp))
            two.append(_job(2, args, tmp))
    step1 = _median([s for r in one for s in r["deep_step"]["overlap"]])
    step2 = {m: _median([s for r in two for s in r["deep_step"].get(m, [])])
             for m in ("overlap", "no_overlap")}
    wait2 = {m: _median([s for r in two for s in r["deep_wait"].get(m, [])])
             for m in ("overlap", "no_overlap")}
    ips1 = DEEP_BATCH / step1
    ips2 = 2 * DEEP_BATCH / step2["overlap"]
    rows = [{"config": "1 rank", "threads/rank": args.threads, "step ms": 1e3 * step1,
             "img/s": ips1},
            {"config": "2 ranks, overlap", "threads/rank": args.threads,
             "step ms": 1e3 * step2["overlap"], "img/s": ips2,
             "efficiency": ips2 / (2 * ips1),
             "comm wait %": 100 * wait2["overlap"] / step2["overlap"]},
            {"config": "2 ranks, no overlap", "threads/rank": args.threads,
             "step ms": 1e3 * step2["no_overlap"], "img/s": 2 * DEEP_BATCH / step2["no_overlap"],
             "efficiency": DEEP_BATCH / step2["no_overlap"] / ips1,
             "comm wait %": 100 * wait2["no_overlap"] / step2["no_overlap"]}]
    _common.print_machine()
    print(f"DeepConvNet, batch {DEEP_BATCH} per rank, Adam; medians of "
          f"{args.rounds} x {args.repeat} steps per configuration")
    _common.table(rows, ["config", "threads/rank", "step ms", "img/s", "efficiency",
                         "comm wait %"])

    small = [r["allreduce"]["small"] for r in two]
    large = [r["allreduce"]["large"] for r in two]
    t_small = min(s["seconds"] for s in small)
    t_large = min(s["seconds"] for s in large)
    alpha = t_small / 2  # 2 ranks: T = 2 alpha + n / beta
    beta = large[0]["bytes"] / max(t_large - 2 * alpha, 1e-9)
    print(f"\nallreduce between 2 ranks: 8 B in {1e6 * t_small:.1f} us, "
          f"{large[0]['bytes'] >> 20} MiB in {1e3 * t_large:.2f} ms -> alpha = "
          f"{1e6 * alpha:.1f} us, beta = {beta / 1e9:.2f} GB/s")

    parts = {"DeepConvNet": ([p for r in one for p in r["deep_parts"]], one[0]["grad_bytes"],
                             one[0]["deep_last_bucket"]),
             "ResNet-20": ([p for r in one for p in r["resnet_parts"]],
                           one[0]["resnet_grad_bytes"], one[0]["resnet_last_bucket"])}
    networks = [{"name": "measured here (shared memory)", "alpha": alpha, "beta": beta},
                ETHERNET]
    model_rows = []
    for name, (p_list, nbytes, last) in parts.items():
        fwd = _median([p[0] for p in p_list])
        bwd = _median([p[1] for p in p_list])
        upd = _median([p[2] for p in p_list])
        step = fwd + bwd + upd
        for net in networks:
            for overlap in (False, True):
                row = {"model": name, "grad MB": nbytes / 1e6, "last MB": last / 1e6,
                       "step ms": 1e3 * step,
                       "bwd ms": 1e3 * bwd, "network": net["name"],
                       "overlap": "yes" if overlap else "no"}
                for p in RANKS_MODELLED:
                    row[f"E({p})"] = efficiency(step, bwd, nbytes, last, p, net["alpha"],
                                                net["beta"], overlap)
                model_rows.append(row)
    print("\nmodelled ring-allreduce efficiency, 1 thread per rank, batch per rank "
          f"{DEEP_BATCH} (DeepConvNet) / {RESNET_BATCH} (ResNet-20); E(p) = t / (t + exposed "
          f"T), T(p) = 2(p-1) alpha + 2(p-1)/p n / beta, exposed with overlap: "
          f"max(T(p) - backward, T_last(p))")
    _common.table(model_rows, ["model", "grad MB", "last MB", "step ms", "bwd ms", "network", "overlap",
                               *[f"E({p})" for p in RANKS_MODELLED]])
    path = _common.save("distributed", {
        "quick": args.quick, "rounds": args.rounds, "repeat": args.repeat,
        "threads_per_rank": args.threads, "measured": rows,
        "allreduce": {"alpha_s": alpha, "beta_Bps": beta, "small": small, "large": large},
        "model": model_rows, "jobs": {"one": one, "two": two}}, args.json)
    print(f"\nwrote {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeat", type=int, default=30, help="timed steps per job")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (JIT, caches)")
    p.add_argument("--rounds", type=int, default=3, help="1-rank and 2-rank jobs, alternating")
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 round of few steps")
    p.add_argument("--threads", type=int, default=1, help="threads per rank")
    p.add_argument("--resnet-steps", type=int, default=5)
    p.add_argument("--json", default=None, help="where to write results (default bench/results/)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device != "cpu":
        sys.exit("bench/distributed.py: CPU ranks only (the MPI wheels are not CUDA-aware)")
    if args.worker:
        return worker(args)
    if args.quick:
        args.rounds, args.repeat, args.warmup, args.resnet_steps = 1, 6, 2, 2
    return launcher(args)


if __name__ == "__main__":
    main()
