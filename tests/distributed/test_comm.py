"""cdl.distributed.comm: the communicator, init's abort-on-error hook, threads per rank."""
import os
import subprocess
import sys
import textwrap

import pytest

from cdl.distributed import comm as C

from ._mpi import needs_mpi, run


@needs_mpi
def test_a_rank_that_dies_mid_epoch_ends_the_job_with_its_error(tmp_path):
    code, stdout, stderr, seconds = run("failure", tmp_path / "x", 1, 3, timeout=60,
                                        check=False)
    assert code != 0
    assert "RuntimeError: rank 1 dies at batch 3" in stderr
    assert "aborting the job" in stderr
    assert seconds < 30


def test_threads_per_rank():
    assert C.default_threads(1, cores=None) >= 1
    assert C.default_threads(64) == 1


def test_threads_divide_the_allowed_cores_unless_bound(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert C.default_threads(2) == 4 and C.default_threads(3) == 2 and C.default_threads(0) == 8
    # a launcher bound this rank to 2 of the machine's 16 cores: they are all its own
    assert C.default_threads(4, cores=16) == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 4}, raising=False)
    assert C.default_threads(4, cores=16) == 2


def test_without_mpi4py_init_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r'cdl.distributed needs mpi4py .*pip install "cdl\[mpi\]"'):
        C.init()


_ONE_RANK = textwrap.dedent("""
    import sys
    import numpy as np
    from cdl.distributed import comm as C
    comm = C.init(threads=0)
    assert (comm.rank, comm.size, comm.local_rank, comm.local_size) == (0, 1, 0, 1), comm
    assert repr(comm) == "Communicator(rank=0, size=1, local_size=1)"
    assert sys.excepthook is not sys.__excepthook__  # abort_on_error installed its hook
    a = np.arange(4, dtype=np.float32)
    s = comm.allreduce_sum(a)
    assert s is not a and s.dtype == np.float32 and s.tolist() == [0, 1, 2, 3]
    assert comm.broadcast(a) is a
    assert comm.bcast({"k": 1}) == {"k": 1}
    assert comm.allreduce_scalar(2.5) == 2.5
    comm.barrier()
    print("ok")
""")


def test_one_rank_without_a_launcher(tmp_path):
    pytest.importorskip("mpi4py")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", _ONE_RANK], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
