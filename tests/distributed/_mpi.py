"""What the tests of cdl.distributed share: 2-rank programs (programs.py) under
``mpiexec -n 2``, with timeouts, and the comparison of their results.

Those tests skip when mpi4py or mpiexec is missing (``pip install "cdl[mpi]"``); .ci/run
installs that extra and runs them for real (CDL_REQUIRE_MPI=1 turns a skip into an error).
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs.py")


def _mpiexec():
    here = os.path.dirname(sys.executable)  # a venv's bin (the MPICH wheel puts it there)
    return shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))


MPIEXEC = _mpiexec()
_MISSING = importlib.util.find_spec("mpi4py") is None or MPIEXEC is None
if _MISSING and os.environ.get("CDL_REQUIRE_MPI"):  # .ci/run: these must run, not skip
    raise RuntimeError(f"CDL_REQUIRE_MPI is set but mpi4py or mpiexec is missing "
                       f"(mpiexec: {MPIEXEC}); pip install \".[mpi]\"")
# the marks of a test that runs programs under mpiexec
MPI_MARKS = [pytest.mark.skipif(_MISSING, reason='needs mpi4py and mpiexec: pip install "cdl[mpi]"'),
             pytest.mark.slow]  # each starts 2 Python processes (a few seconds)


def needs_mpi(test):
    """Mark one test as running programs under mpiexec (MPI_MARKS)."""
    for mark in MPI_MARKS:
        test = mark(test)
    return test


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


def compare(res, keys, rtol, atol):
    for k in keys:
        np.testing.assert_array_equal(res[f"rank0/{k}"], res[f"rank1/{k}"], err_msg=k)
        np.testing.assert_allclose(res[f"rank0/{k}"], res[f"ref/{k}"], rtol=rtol, atol=atol,
                                   err_msg=k)


def keys(res):
    return [k[len("ref/"):] for k in res.files if k.startswith("ref/")]


def programs():
    """programs.py as a module (its net and data builders)."""
    spec = importlib.util.spec_from_file_location("cdl_distributed_programs", PROGRAMS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
