"""Data parallel over MPI: 2-rank programs (programs.py) under ``mpiexec -n 2``, with timeouts.

Skipped when mpi4py or mpiexec is missing (``pip install "cdl[mpi]"``); .ci/run
installs that extra and runs these for real (CDL_REQUIRE_MPI=1 turns a skip into an error).
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cdl import optim
from cdl.train import Trainer

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs.py")


def _mpiexec():
    here = os.path.dirname(sys.executable)  # a venv's bin (the MPICH wheel puts it there)
    return shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))


MPIEXEC = _mpiexec()
_MISSING = importlib.util.find_spec("mpi4py") is None or MPIEXEC is None
if _MISSING and os.environ.get("CDL_REQUIRE_MPI"):  # .ci/run: these must run, not skip
    raise RuntimeError(f"CDL_REQUIRE_MPI is set but mpi4py or mpiexec is missing "
                       f"(mpiexec: {MPIEXEC}); pip install \".[mpi]\"")
pytestmark = [pytest.mark.skipif(_MISSING,
                                 reason='needs mpi4py and mpiexec: pip install "cdl[mpi]"'),
              pytest.mark.slow]  # each starts 2 Python processes (a few seconds)


def _launcher(n):
    cmd = [MPIEXEC, "-n", str(n)]
    version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:  # refuses root and 2 > cores otherwise
        cmd += ["--allow-run-as-root", "--oversubscribe"]
    return cmd


def run(name, out, *args, n=2, timeout=120, check=True, program=PROGRAMS, env=None):
    """(returncode, stdout, stderr, seconds) of programs.py NAME OUT ARGS on n ranks
    (program="-m": python -m NAME ARGS)."""
    env = {**{k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"},
           "PYTHONUNBUFFERED": "1", **(env or {})}
    head = [name] if program == "-m" else [name, str(out)]
    cmd = _launcher(n) + [sys.executable, program, *head, *map(str, args)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # mpiexec and its ranks: their own group
        stdout, stderr = proc.communicate()
        pytest.fail(f"{name} hung (killed after {timeout} s)\n{stdout}\n{stderr}")
    seconds = time.perf_counter() - start
    if check and proc.returncode != 0:
        pytest.fail(f"{name} exited with {proc.returncode}\n{stdout}\n{stderr}")
    return proc.returncode, stdout, stderr, seconds


def _compare(res, keys, rtol, atol):
    for k in keys:
        np.testing.assert_array_equal(res[f"rank0/{k}"], res[f"rank1/{k}"], err_msg=k)
        np.testing.assert_allclose(res[f"rank0/{k}"], res[f"ref/{k}"], rtol=rtol, atol=atol,
                                   err_msg=k)


def _keys(res):
    return [k[len("ref/"):] for k in res.files if k.startswith("ref/")]


@pytest.mark.parametrize("n", [32, 31])  # 31: a last global batch of 7, split 3 + 4
def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path, n):
    out = tmp_path / "eq.npz"
    run("equivalence", out, n, 4, 2)
    res = np.load(out)
    _compare(res, _keys(res), rtol=1e-10, atol=1e-12)
    for k in ("loss", "val_loss", "val_acc", "train_acc"):
        np.testing.assert_allclose(res[f"hist/{k}"], res[f"refhist/{k}"], rtol=1e-10)


def test_sync_batchnorm_equals_one_process_batchnorm(tmp_path):
    out = tmp_path / "bn.npz"
    run("equivalence", out, 31, 4, 2, 1)
    res = np.load(out)
    _compare(res, _keys(res), rtol=1e-9, atol=1e-11)
    for k in (f[len("buf/"):] for f in res.files if f.startswith("buf/")):
        np.testing.assert_allclose(res[f"buf/{k}"], res[f"refbuf/{k}"], rtol=1e-9, err_msg=k)


def test_float16_compression_stays_close(tmp_path):
    out = tmp_path / "f16.npz"
    run("equivalence", out, 32, 4, 1, 0, "float16", 1 << 20)
    res = np.load(out)
    _compare(res, _keys(res), rtol=2e-2, atol=2e-3)


def test_device_gradients_on_the_simulated_gpu(tmp_path):
    """Trainer(device="cuda", comm=...) on the CUDA simulator: the device buffers go through
    the host and the ranks end as one process with the global batch."""
    out = tmp_path / "dev.npz"
    run("device", out, env={"NUMBA_ENABLE_CUDASIM": "1"})
    res = np.load(out)
    _compare(res, _keys(res), rtol=1e-10, atol=1e-12)


def test_a_data_loader_is_sharded_like_arrays(tmp_path):
    out = tmp_path / "loader.npz"
    run("loader", out)
    res = np.load(out)
    _compare(res, _keys(res), rtol=1e-10, atol=1e-12)


def test_mixed_precision_reduces_after_its_backward(tmp_path):
    out = tmp_path / "amp.npz"
    run("precision", out)
    res = np.load(out)
    _compare(res, _keys(res), rtol=1e-3, atol=5e-4)  # float16 gradients, rounded per rank


def test_allreduce_optimizer_in_a_loop_of_ones_own(tmp_path):
    out = tmp_path / "manual.npz"
    run("manual", out, 3)
    res = np.load(out)
    _compare(res, _keys(res), rtol=1e-10, atol=1e-12)


def test_ranks_read_disjoint_shards_and_draw_their_own_noise(tmp_path):
    out = tmp_path / "streams.json"
    run("streams", out)
    res = json.loads(out.read_text())
    rows0, rows1 = res["rows"]
    assert sorted(rows0 + rows1) == list(range(20))  # disjoint, every row once
    d0, d1 = res["draws"]
    assert len(set(d0) | set(d1)) == len(d0) + len(d1)  # no shared augmentation draws
    assert res["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)  # cores / ranks


def test_a_rank_that_dies_mid_epoch_ends_the_job_with_its_error(tmp_path):
    code, stdout, stderr, seconds = run("failure", tmp_path / "x", 1, 3, timeout=60,
                                        check=False)
    assert code != 0
    assert "RuntimeError: rank 1 dies at batch 3" in stderr
    assert "aborting the job" in stderr
    assert seconds < 30


def test_checkpoint_of_two_ranks_resumes_on_one(tmp_path):
    """2 ranks (batch 4 each) write epoch 1; one process (batch 8) resumes for epoch 2: the
    weights of one process that trained both epochs with batch 8 (float tolerance)."""
    programs = _programs()
    path = tmp_path / "run.ckpt"
    _, stdout, _, _ = run("checkpoint", tmp_path / "ck.json", path, 1)
    assert json.loads((tmp_path / "ck.json").read_text()) == {"epoch": 1}
    assert stdout.count("epoch   1/1") == 1  # rank 0 alone prints
    x, t = programs.data(32)

    def trainer(model, epochs, seed):
        return Trainer(model, optim.Adam(lr=1e-2), batch_size=8, epochs=epochs, seed=seed,
                       callbacks=[optim.CosineLR(total=4)], verbose=False, progress=False)

    resumed = trainer(programs.net(seed=99), 1, seed=0)
    resumed.load_checkpoint(path)
    assert resumed.epoch == 1
    resumed.fit(x, t)
    ref = trainer(programs.net(seed=30), 2, seed=7)
    ref.fit(x, t)
    assert resumed.epoch == 2
    np.testing.assert_allclose(resumed.history["loss"], ref.history["loss"], rtol=1e-9)
    for k, p in ref.model.params.items():
        np.testing.assert_allclose(resumed.model.params[k], p, rtol=1e-7, atol=1e-9, err_msg=k)


def test_cdl_train_distributed_prints_once(tmp_path):
    _, stdout, stderr, _ = run("cdl.cli", None, "train", "--distributed", "--epochs", 1,
                               "--save", tmp_path / "m.npz", program="-m")
    assert stdout.count("cdl train: cnn") == 1 and "on 2 ranks" in stdout
    assert stdout.count("epoch   1/1") == 1 and stdout.count("test accuracy") == 1
    assert (tmp_path / "m.npz").exists()


def _programs():
    spec = importlib.util.spec_from_file_location("cdl_distributed_programs", PROGRAMS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
