"""The programs tests/distributed runs under ``mpiexec -n 2``: python programs.py NAME OUT [ARGS].

Rank 0 writes what the test checks to OUT (an .npz, or a .json). Every rank builds
its model and trainer from seeds of its own (rank-dependent), so the results show
that ranks start from rank 0's weights and shuffling state.
"""
import json
import sys

import numpy as np

import cdl
from cdl import distributed, optim
from cdl.layers import (Affine, BatchNorm, Conv2D, Flatten, MaxPool2D, ReLU,
                        SoftmaxCrossEntropy)
from cdl.model import Sequential
from cdl.train import Callback, Trainer


def net(seed, batchnorm=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    layers = [Conv2D(1, 4, 3, pad=1, rng=rng)]
    layers += [BatchNorm(4)] if batchnorm else []
    layers += [ReLU(), MaxPool2D(2), Flatten(), Affine(4 * 4 * 4, 16, rng=rng), ReLU(),
               Affine(16, 3, rng=rng)]
    return Sequential(layers, loss=SoftmaxCrossEntropy()).astype(dtype)


def data(n, dtype=np.float64):
    rng = np.random.default_rng(123)
    x = rng.standard_normal((n, 1, 8, 8)).astype(dtype)
    t = rng.integers(0, 3, n)
    return x, t


def _save(out, **arrays):
    np.savez(out, **arrays)


def equivalence(comm, out, n="32", batch="4", epochs="2", bn="0", compression="none",
                bucket="256"):
    """Trainer(comm=...) with per-rank batch `batch`; rank 0 also trains the one-process
    reference with batch `batch` * size on the same seed (rank 0's)."""
    n, batch, epochs = int(n), int(batch), int(epochs)
    x, t = data(n)
    model = net(seed=10 + comm.rank, batchnorm=bn == "1")
    if bn == "1":
        distributed.sync_batchnorm(model, comm)
    opt = distributed.AllReduceOptimizer(
        optim.Momentum(lr=0.1), comm, bucket_bytes=int(bucket),
        compression=None if compression == "none" else compression)
    trainer = Trainer(model, opt, batch_size=batch, epochs=epochs, seed=5 + comm.rank,
                      verbose=False, progress=False)
    history = trainer.fit(x, t, validation_data=(x[:10], t[:10]))
    params = {k: np.array(v) for k, v in model.params.items()}
    gathered = comm.mpi.gather(params, root=0)
    if comm.rank != 0:
        return
    ref = net(seed=10, batchnorm=bn == "1")
    rt = Trainer(ref, optim.Momentum(lr=0.1), batch_size=batch * comm.size, epochs=epochs,
                 seed=5, verbose=False, progress=False)
    rh = rt.fit(x, t, validation_data=(x[:10], t[:10]))
    arrays = {}
    for k in params:
        arrays[f"rank0/{k}"] = gathered[0][k]
        arrays[f"rank1/{k}"] = gathered[1][k]
        arrays[f"ref/{k}"] = ref.params[k]
    for k in ("loss", "val_loss", "val_acc", "train_acc"):
        arrays[f"hist/{k}"], arrays[f"refhist/{k}"] = np.array(history[k]), np.array(rh[k])
    if bn == "1":
        for k, v in model.state().items():
            if k.startswith("buffers/"):
                arrays[f"buf/{k}"], arrays[f"refbuf/{k}"] = v, ref.state()[k]
    _save(out, **arrays)


def manual(comm, out, steps="3"):
    """A loop of one's own with AllReduceOptimizer: broadcast, then shards of each batch."""
    x, t = data(16)
    model = net(seed=20 + comm.rank)
    opt = distributed.AllReduceOptimizer(optim.SGD(lr=0.1), comm)
    opt.broadcast(model)
    half = len(x) // comm.size
    for _ in range(int(steps)):
        lo = comm.rank * half
        model.loss(x[lo:lo + half], t[lo:lo + half])
        model.backward()
        opt.update(model.params, model.grads)
    gathered = comm.mpi.gather({k: np.array(v) for k, v in model.params.items()}, root=0)
    if comm.rank == 0:
        ref = net(seed=20)
        sgd = optim.SGD(lr=0.1)
        for _ in range(int(steps)):
            ref.loss(x, t)
            ref.backward()
            sgd.update(ref.params, ref.grads)
        arrays = {f"rank{r}/{k}": v for r, p in enumerate(gathered) for k, v in p.items()}
        arrays.update({f"ref/{k}": v for k, v in ref.params.items()})
        _save(out, **arrays)


class _Die(Callback):
    def __init__(self, rank, batch):
        self.rank, self.batch = rank, batch

    def on_batch_end(self, trainer, batch, logs):
        if trainer.comm.rank == self.rank and batch == self.batch:
            raise RuntimeError(f"rank {self.rank} dies at batch {batch}")


def failure(comm, out, rank="1", batch="3"):
    """Rank `rank` raises in the middle of the first epoch; the others are in collectives."""
    x, t = data(64)
    trainer = Trainer(net(seed=1), optim.SGD(lr=0.1), batch_size=4, epochs=50, seed=0,
                      callbacks=[_Die(int(rank), int(batch))], comm=comm, verbose=False,
                      progress=False)
    trainer.fit(x, t)


def checkpoint(comm, out, path="", epochs="1"):
    """Two ranks train `epochs` epochs writing a checkpoint at path (rank 0 writes)."""
    x, t = data(32)
    trainer = Trainer(net(seed=30 + comm.rank), optim.Adam(lr=1e-2), batch_size=4,
                      epochs=int(epochs), seed=7 + comm.rank, comm=comm, checkpoint=path,
                      verbose=True, progress=False, callbacks=[optim.CosineLR(total=4)])
    trainer.fit(x, t)
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump({"epoch": trainer.epoch}, f)


def streams(comm, out):
    """Ranks' shards of an epoch and their augmentation draws."""
    x, t = data(20)
    seen, draws = [], []

    def augment(xb, tb, rng):
        seen.append(np.array(xb[:, 0, 0, 0]))
        draws.append(rng.random())
        return xb, tb

    trainer = Trainer(net(seed=1), optim.SGD(lr=0.01), batch_size=3, epochs=1, seed=comm.rank,
                      augment=augment, comm=comm, verbose=False, progress=False)
    trainer.fit(x, t)
    rows = [int(np.flatnonzero(x[:, 0, 0, 0] == v)[0]) for b in seen for v in b]
    everything = comm.mpi.gather((rows, draws), root=0)
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump({"rows": [r for r, _ in everything], "draws": [d for _, d in everything],
                       "threads": __import__("numba").get_num_threads()}, f)


def device(comm, out):
    """The GPU path (run with NUMBA_ENABLE_CUDASIM=1): device gradients staged through the
    host; rank 0 also trains the one-process CPU reference."""
    x, t = data(8)
    x = x.reshape(8, -1)[:, :6].copy()

    def small(seed):
        rng = np.random.default_rng(seed)
        return Sequential([Affine(6, 5, rng=rng), ReLU(), Affine(5, 3, rng=rng)],
                          loss=SoftmaxCrossEntropy()).astype(np.float64)

    model = small(40 + comm.rank)
    trainer = Trainer(model, optim.Momentum(lr=0.1), batch_size=2, epochs=1, seed=comm.rank,
                      device="cuda", comm=comm, verbose=False, progress=False)
    trainer.fit(x, t)
    params = {k: cdl.cuda.to_host(v) for k, v in model.params.items()}
    gathered = comm.mpi.gather(params, root=0)
    if comm.rank == 0:
        ref = small(40)
        Trainer(ref, optim.Momentum(lr=0.1), batch_size=4, epochs=1, seed=0, verbose=False,
                progress=False).fit(x, t)
        arrays = {f"rank{r}/{k}": v for r, p in enumerate(gathered) for k, v in p.items()}
        arrays.update({f"ref/{k}": v for k, v in ref.params.items()})
        _save(out, **arrays)


def precision(comm, out):
    """Trainer(precision="float16", comm=...): mixed precision's backward bypasses grad_hook,
    so the trainer reduces after it; rank 0 also trains the one-process reference."""
    x, t = data(32, np.float32)

    def run(model, batch, c):
        # a scale that never overflows: a skipped step depends on the batch size
        scaler = cdl.precision.LossScaler(init_scale=256.0)
        Trainer(model, optim.Momentum(lr=0.05), batch_size=batch, epochs=1, seed=3,
                precision=scaler, comm=c, verbose=False, progress=False).fit(x, t)
        return {k: np.array(v) for k, v in model.params.items()}

    params = run(net(seed=50 + comm.rank, dtype=np.float32), 4, comm)
    gathered = comm.mpi.gather(params, root=0)
    if comm.rank == 0:
        ref = run(net(seed=50, dtype=np.float32), 8, None)
        arrays = {f"rank{r}/{k}": v for r, p in enumerate(gathered) for k, v in p.items()}
        arrays.update({f"ref/{k}": v for k, v in ref.items()})
        _save(out, **arrays)


def loader(comm, out):
    """Trainer(comm=...).fit(DataLoader) with rank-dependent loader seeds; rank 0 also
    trains the one-process reference on a loader with the global batch."""
    from cdl.data import DataLoader
    x, t = data(30)
    model = net(seed=60 + comm.rank)
    Trainer(model, optim.Momentum(lr=0.1), epochs=2, seed=comm.rank, comm=comm, verbose=False,
            progress=False).fit(DataLoader(x, t, batch_size=4, seed=8 + comm.rank,
                                           dtype=np.float64), validation_data=(x[:6], t[:6]))
    gathered = comm.mpi.gather({k: np.array(v) for k, v in model.params.items()}, root=0)
    if comm.rank == 0:
        ref = net(seed=60)
        Trainer(ref, optim.Momentum(lr=0.1), epochs=2, seed=0, verbose=False,
                progress=False).fit(DataLoader(x, t, batch_size=8, seed=8, dtype=np.float64))
        arrays = {f"rank{r}/{k}": v for r, p in enumerate(gathered) for k, v in p.items()}
        arrays.update({f"ref/{k}": v for k, v in ref.params.items()})
        _save(out, **arrays)


def main():
    name, out, *args = sys.argv[1:]
    comm = distributed.init()
    assert comm.size >= 2, "run under mpiexec -n 2"
    assert cdl.distributed is distributed
    globals()[name](comm, out, *args)


if __name__ == "__main__":
    main()
