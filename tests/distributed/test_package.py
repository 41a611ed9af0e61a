"""cdl.distributed as a package: its names, and that importing it needs no MPI (mpi4py loads
at init())."""
import subprocess
import sys

import cdl


def test_exported_names():
    from cdl import distributed
    assert set(distributed.__all__) == {"init", "Communicator", "AllReduceOptimizer", "GradSync",
                                        "sync_batchnorm", "default_threads", "set_threads"}
    for name in distributed.__all__:
        assert callable(getattr(distributed, name)), name
    assert cdl.distributed is distributed


def test_importing_it_loads_no_mpi():
    code = ("import sys, cdl, cdl.distributed; cdl.distributed.AllReduceOptimizer; "
            "print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "False"
