"""Data-parallel training (cdl.distributed.training, through Trainer(comm=...)): 2-rank
programs under ``mpiexec -n 2`` (see _mpi.py) against one process with the global batch;
shards, checkpoints, `cdl train --distributed`."""
import json
import os

import numpy as np
import pytest

from cdl import optim
from cdl.train import Trainer

from cdl.distributed import training

from ._mpi import compare, keys, needs_mpi, programs, run


class Rank:
    """A communicator's rank and size, for the helpers that only read them."""
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.mark.parametrize("n, size", [(31, 2), (7, 3), (2, 4), (0, 2)])
def test_shards_are_contiguous_disjoint_and_cover_the_rows(n, size):
    spans = [training.shard(n, Rank(r, size)) for r in range(size)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(hi == lo for (_, hi), (lo, _) in zip(spans, spans[1:]))
    assert max(hi - lo for lo, hi in spans) - min(hi - lo for lo, hi in spans) <= 1


@pytest.mark.parametrize("bit", [np.random.PCG64, np.random.MT19937, np.random.Philox,
                                 np.random.SFC64])  # SFC64 cannot jump: a seed is drawn
def test_jumped_streams_are_reproducible_and_independent(bit):
    rng = np.random.Generator(bit(5))
    draws = [training.jumped(rng, r).random(4).tolist() for r in range(3)]
    assert draws == [training.jumped(np.random.Generator(bit(5)), r).random(4).tolist()
                     for r in range(3)]
    assert len({tuple(d) for d in draws}) == 3
    # rng itself does not move; rank 0's stream is rng's own only where rng can jump
    own = rng.random(4).tolist()
    assert own == np.random.Generator(bit(5)).random(4).tolist()
    assert own not in draws[1:]


@needs_mpi
@pytest.mark.parametrize("n", [32, 31])  # 31: a last global batch of 7, split 3 + 4
def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path, n):
    out = tmp_path / "eq.npz"
    run("equivalence", out, n, 4, 2)
    res = np.load(out)
    compare(res, keys(res), rtol=1e-10, atol=1e-12)
    for k in ("loss", "val_loss", "val_acc", "train_acc"):
        np.testing.assert_allclose(res[f"hist/{k}"], res[f"refhist/{k}"], rtol=1e-10)


@needs_mpi
def test_device_gradients_on_the_simulated_gpu(tmp_path):
    """Trainer(device="cuda", comm=...) on the CUDA simulator: the device buffers go through
    the host and the ranks end as one process with the global batch."""
    out = tmp_path / "dev.npz"
    run("device", out, env={"NUMBA_ENABLE_CUDASIM": "1"})
    res = np.load(out)
    compare(res, keys(res), rtol=1e-10, atol=1e-12)


@needs_mpi
def test_a_data_loader_is_sharded_like_arrays(tmp_path):
    out = tmp_path / "loader.npz"
    run("loader", out)
    res = np.load(out)
    compare(res, keys(res), rtol=1e-10, atol=1e-12)


@needs_mpi
def test_mixed_precision_reduces_after_its_backward(tmp_path):
    out = tmp_path / "amp.npz"
    run("precision", out)
    res = np.load(out)
    compare(res, keys(res), rtol=1e-3, atol=5e-4)  # float16 gradients, rounded per rank


@needs_mpi
def test_ranks_read_disjoint_shards_and_draw_their_own_noise(tmp_path):
    out = tmp_path / "streams.json"
    run("streams", out)
    res = json.loads(out.read_text())
    rows0, rows1 = res["rows"]
    assert sorted(rows0 + rows1) == list(range(20))  # disjoint, every row once
    d0, d1 = res["draws"]
    assert len(set(d0) | set(d1)) == len(d0) + len(d1)  # no shared augmentation draws
    assert res["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)  # cores / ranks


@needs_mpi
def test_checkpoint_of_two_ranks_resumes_on_one(tmp_path):
    """2 ranks (batch 4 each) write epoch 1; one process (batch 8) resumes for epoch 2: the
    weights of one process that trained both epochs with batch 8 (float tolerance)."""
    progs = programs()
    path = tmp_path / "run.ckpt"
    _, stdout, _, _ = run("checkpoint", tmp_path / "ck.json", path, 1)
    assert json.loads((tmp_path / "ck.json").read_text()) == {"epoch": 1}
    assert stdout.count("epoch   1/1") == 1  # rank 0 alone prints
    x, t = progs.data(32)

    def trainer(model, epochs, seed):
        return Trainer(model, optim.Adam(lr=1e-2), batch_size=8, epochs=epochs, seed=seed,
                       callbacks=[optim.CosineLR(total=4)], verbose=False, progress=False)

    resumed = trainer(progs.net(seed=99), 1, seed=0)
    resumed.load_checkpoint(path)
    assert resumed.epoch == 1
    resumed.fit(x, t)
    ref = trainer(progs.net(seed=30), 2, seed=7)
    ref.fit(x, t)
    assert resumed.epoch == 2
    np.testing.assert_allclose(resumed.history["loss"], ref.history["loss"], rtol=1e-9)
    for k, p in ref.model.params.items():
        np.testing.assert_allclose(resumed.model.params[k], p, rtol=1e-7, atol=1e-9, err_msg=k)


@needs_mpi
def test_cdl_train_distributed_prints_once(tmp_path):
    _, stdout, stderr, _ = run("cdl.cli", None, "train", "--distributed", "--epochs", 1,
                               "--save", tmp_path / "m.npz", program="-m")
    assert stdout.count("cdl train: cnn") == 1 and "on 2 ranks" in stdout
    assert stdout.count("epoch   1/1") == 1 and stdout.count("test accuracy") == 1
    assert (tmp_path / "m.npz").exists()
