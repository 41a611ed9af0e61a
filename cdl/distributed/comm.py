"""The communicator: mpi4py's COMM_WORLD with rank, size and the few collectives cdl uses.

``init()`` loads mpi4py (``pip install "cdl[mpi]"``: mpi4py and an MPI library
from PyPI wheels), installs an excepthook that ends the whole job when one
rank fails, and sets each rank's thread counts. No home-made networking:
every byte goes through MPI.
"""
import os
import sys
import time

import numpy as np

_HINT = 'pip install "cdl[mpi]" (mpi4py and the MPICH wheel)'


def _mpi():
    """mpi4py's MPI module, or ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:  # mpi4py missing, or no MPI library for it to load
        raise ImportError(f"cdl.distributed needs mpi4py and an MPI library: {_HINT} "
                          f"({type(e).__name__}: {e})") from None
    return MPI


class Communicator:
    """mpi4py's communicator for cdl: ``rank``, ``size``, ``local_rank``/``local_size``
    (the ranks on this machine), and ``mpi``, the mpi4py communicator itself (mpi_comm,
    usually ``MPI.COMM_WORLD``; ``cdl.distributed.init()`` builds this object).

    The collectives cdl needs take host NumPy arrays (device arrays are staged through
    the host by their callers) and sum in the arrays' own dtype.
    """

    def __init__(self, mpi_comm):
        MPI = _mpi()
        self.mpi = mpi_comm
        self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        local = mpi_comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()

    def __repr__(self):
        return f"Communicator(rank={self.rank}, size={self.size}, local_size={self.local_size})"

    # -- collectives -------------------------------------------------------------
    def barrier(self):
        """Wait until every rank has called barrier."""
        self.mpi.Barrier()

    def bcast(self, obj, root=0):
        """root's Python object (pickled; small things: generator states, logs)."""
        return self.mpi.bcast(obj, root=root)

    def broadcast(self, a, root=0):
        """Root's values into host array a, in place (contiguous); returns a."""
        self.mpi.Bcast(a, root=root)
        return a

    def allreduce_sum(self, a):
        """The element-wise sum over the ranks of host array a (a new array, a's dtype)."""
        a = np.ascontiguousarray(a)
        out = np.empty_like(a)
        self.mpi.Allreduce(a, out)
        return out

    def allreduce_scalar(self, value, op="sum"):
        """sum, max or min of a Python number over the ranks."""
        MPI = _mpi()
        return self.mpi.allreduce(value, op={"sum": MPI.SUM, "max": MPI.MAX,
                                             "min": MPI.MIN}[op])

    def iallreduce(self, a):
        """Start summing host array a over the ranks in place; returns the MPI request."""
        MPI = _mpi()
        return self.mpi.Iallreduce(MPI.IN_PLACE, a)

    def broadcast_model(self, model, root=0):
        """Root's parameters and buffers into every rank's model, in place."""
        self.broadcast_arrays(model.state().values(), root)

    def broadcast_arrays(self, arrays, root=0):
        """Root's values into every rank's arrays, in place (one Bcast per array; device
        arrays through the host)."""
        from cdl import cuda
        from cdl._checks import is_device_array
        for v in arrays:
            if is_device_array(v):
                host = self.broadcast(np.ascontiguousarray(cuda.to_host(v)), root)
                v.copy_to_device(host)
            else:
                self.broadcast(v, root)

    def average_buffers(self, model):
        """Replace every float buffer (BatchNorm's running statistics) by its mean over the
        ranks, so that all ranks evaluate and save the same model."""
        from cdl import cuda
        from cdl._checks import is_device_array
        for k, v in model.state().items():
            if not k.startswith("buffers/") or v.dtype.kind != "f":
                continue
            mean = self.allreduce_sum(cuda.to_host(v)) / self.size
            if is_device_array(v):
                v.copy_to_device(mean.astype(v.dtype))
            else:
                v[...] = mean

    def abort(self, code=1):
        """End every rank of the job now (MPI_Abort), after flushing this rank's output."""
        _flush()
        self.mpi.Abort(code)


def _flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:  # a closed stream must not stop the abort
            pass


_installed = None


def _abort_on_error(comm):
    """sys.excepthook: print the traceback as usual, then end the whole job (MPI_Abort).

    Without it an uncaught exception in one rank leaves the others waiting in a
    collective forever. MPICH can drop a rank's last lines when MPI_Abort ends
    the job: flush, pause a moment, then abort.
    """
    global _installed
    if _installed is not None:
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        try:
            previous(kind, value, tb)
            print(f"cdl.distributed: rank {comm.rank} of {comm.size} failed "
                  f"({kind.__name__}); aborting the job", file=sys.stderr)
            _flush()
            time.sleep(0.3)
        finally:
            comm.mpi.Abort(1)

    sys.excepthook = _installed = hook


def default_threads(local_size, cores=None):
    """Threads per rank: the cores this process may run on, divided among the local_size
    ranks on this machine (at least 1); a rank that the launcher bound to its own cores
    keeps them all. cores: the machine's core count (default os.cpu_count())."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    total = cores if cores is not None else (os.cpu_count() or allowed)
    if allowed < total:  # bound by the launcher (--bind-to core ...): these cores are ours
        return max(1, allowed)
    return max(1, allowed // max(1, local_size))


def set_threads(n):
    """n threads for cdl's kernels (Numba) and for BLAS, unless the environment sets them
    (NUMBA_NUM_THREADS; OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS)."""
    import numba
    if "NUMBA_NUM_THREADS" not in os.environ:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if not any(v in os.environ for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                         "MKL_NUM_THREADS")):
        from threadpoolctl import threadpool_limits  # a dependency of cdl
        threadpool_limits(n, user_api="blas")


def init(threads=None, abort_on_error=True):
    """The job's communicator (mpi4py's COMM_WORLD): ``comm.rank``, ``comm.size``.

    threads         threads per rank for cdl's kernels and BLAS: None (default) gives
                    each of the ranks on a machine cores / ranks (so they do not
                    oversubscribe it; left as they are for a single rank), an int sets
                    it, 0 leaves the settings alone
    abort_on_error  install an excepthook that prints the error and ends every rank
                    (MPI_Abort): one failing rank never leaves the others hanging

    Run under an MPI launcher: ``mpiexec -n 4 python train.py`` (a plain
    ``python train.py`` is one rank of size 1).
    """
    MPI = _mpi()
    comm = Communicator(MPI.COMM_WORLD)
    if abort_on_error:
        _abort_on_error(comm)
    if threads is None:
        if comm.local_size > 1:
            set_threads(default_threads(comm.local_size))
    elif threads:
        set_threads(int(threads))
    return comm
