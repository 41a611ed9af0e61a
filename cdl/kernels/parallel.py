"""How cdl's CPU kernels share the cores: the threading policy.

A training step alternates BLAS calls with compiled loops, and every thread
pool that idles by spinning takes cores from the next one. Four rules:

1. Convolution and pooling never nest two pools. ``run_slices`` cuts the
   batch into one contiguous slice per thread and runs a serial function on
   each: the calling thread takes the first slice, a persistent pool of
   Python threads the others (the compiled code releases the GIL). Inside,
   BLAS is held to one thread (``single_threaded_blas``), so each GEMM runs
   in the thread that just wrote its operands. One synchronisation per layer
   call. (An earlier version ran im2col on OpenMP threads and the GEMMs on
   OpenBLAS's: on 2 cores shared with other jobs a conv layer took 10 to 250
   times longer than the same code on one thread.)

2. OpenBLAS's own threads are replaced by OpenMP (``route_blas_threads``,
   done on the first ``run_slices``): they spin for about 0.1 s after each
   call, and in a DeepConvNet step (whose affine layers still call BLAS
   with several threads) that cost 1.45x per step on 2 cores.

3. OpenMP threads (Numba's prange kernels, the Cython extension, BLAS after
   rule 2) sleep when idle: cdl/__init__.py sets OMP_WAIT_POLICY=PASSIVE
   before libgomp loads.

4. Every thread that runs a slice first runs one mid-sized single-threaded
   sgemm (``_warm_sgemm``, about 1 ms, once per thread). Measured with
   OpenBLAS 0.3.31 (Haswell kernels) on a Zen CPU: until a thread has run
   an sgemm of roughly 64x576x384 or more, its small single-threaded sgemms
   (the per-chunk GEMMs of a convolution) run about 3x slower, 13 instead
   of 40 GFLOP/s, and stay so however many of them it runs; DeepConvNet's
   64-channel layers took 2.5x longer. dgemm shows no such effect.

The thread count is Numba's: ``numba.set_num_threads(n)`` (or the
NUMBA_NUM_THREADS environment variable) sets it for cdl as a whole.
"""
import ctypes
import itertools
import os
import threading

import numba
import numpy as np

_lock = threading.Lock()
_pool = []              # persistent _Worker threads of this process
_pool_pid = None
_dispatch = threading.Lock()  # held while run_slices hands out slices (see run_slices)
_blas = None            # threadpoolctl controllers of the loaded BLAS libraries
_blas_users = 0         # threads inside single_threaded_blas()
_blas_saved = []
_routed = None          # route_blas_threads(): None before the first try, then True/False
_callback_setters = []  # OpenBLAS's set-callback functions we called (undone in a fork child)
_local = threading.local()  # per thread: has it run _warm_sgemm?


def _after_fork_in_child():
    """A forked child has none of the parent's threads: fresh lock and pool, BLAS restored.

    libgomp cannot start threads again in a child forked after it ran, so
    OpenBLAS goes back to its own threads (which it restarts after a fork)
    and is not routed to OpenMP again in this process.
    """
    global _lock, _pool, _pool_pid, _dispatch, _blas_users, _routed
    _lock, _pool, _pool_pid, _dispatch = threading.Lock(), [], None, threading.Lock()
    for setter in _callback_setters:
        setter(None)
    if _callback_setters:
        _routed = False
    if _blas_users:  # forked from inside single_threaded_blas(): give BLAS its threads back
        for c, n in zip(_blas, _blas_saved):
            c.set_num_threads(n)
        _blas_users = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def num_threads():
    """Threads cdl's kernels use: Numba's setting for the calling thread."""
    return numba.get_num_threads()


def split(n, parts):
    """[(a, z), ...]: range(n) cut into at most ``parts`` contiguous, non-empty slices."""
    parts = max(1, min(parts, n))
    return [(t * n // parts, (t + 1) * n // parts) for t in range(parts)]


class _Worker:
    """A persistent daemon thread that runs one task at a time.

    Tasks are handed over with two locks, start and done: a round trip costs
    about 15 us, against 75 us for ThreadPoolExecutor.submit + wait (a
    DeepConvNet step makes about 40 such calls).
    """

    def __init__(self):
        self._start, self._done = threading.Lock(), threading.Lock()
        self._start.acquire()
        self._done.acquire()
        self._task = self._result = self._error = None
        threading.Thread(target=self._loop, name="cdl", daemon=True).start()

    def _loop(self):
        while True:
            self._start.acquire()
            fn, args = self._task
            try:
                self._result, self._error = fn(*args), None
            except BaseException as e:  # re-raised in the caller by join()
                self._result, self._error = None, e
            self._task = None
            self._done.release()

    def submit(self, fn, *args):
        self._task = (fn, args)
        self._start.release()

    def join(self):
        """The task's result, or its exception raised here."""
        self._done.acquire()
        result, error = self._result, self._error
        self._result = self._error = None
        if error is not None:
            raise error
        return result


def _workers(count):
    """``count`` worker threads of this process (made on first need, kept for its life)."""
    global _pool, _pool_pid
    with _lock:
        if _pool_pid != os.getpid():
            _pool, _pool_pid = [], os.getpid()
        while len(_pool) < count:
            _pool.append(_Worker())
        return _pool[:count]


def _blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries loaded in this process (cached)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _blas


def route_blas_threads():
    """Run OpenBLAS's parallel sections as OpenMP loops, once per process; True if done.

    OpenBLAS's own worker threads spin for about 0.1 s after every call. In
    a training step the next kernel starts within that time, so on 2 cores
    a spinning worker took half a core from cdl's threads: DeepConvNet
    steps were about 1.45x slower than with OPENBLAS_THREAD_TIMEOUT=4 (which
    only works when set before numpy loads). OpenBLAS 0.3.27+ accepts a
    callback that runs its jobs instead (openblas_set_threads_callback_function);
    cdl._threads gives one that runs them on the OpenMP runtime, whose idle
    threads sleep under cdl's OMP_WAIT_POLICY=PASSIVE and which Numba's
    prange kernels share: one pool for BLAS and Numba, cdl's worker threads
    (run_slices) for convolution and pooling. Skipped, returning False, for
    other BLAS libraries, older or OpenMP builds of OpenBLAS, a missing
    extension, or CDL_OPENBLAS_THREADS=own in the environment.
    """
    global _routed
    with _lock:
        if _routed is not None:
            return _routed
        _routed = False
        if os.environ.get("CDL_OPENBLAS_THREADS", "").lower() == "own":
            return False
        try:
            from cdl import _threads
        except ImportError:
            return False
        for c in _blas_controllers():
            if c.internal_api != "openblas" or getattr(c, "threading_layer", "") == "openmp":
                continue
            lib = ctypes.CDLL(c.filepath)
            for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
                setter = getattr(lib, f"{prefix}openblas_set_threads_callback_function{suffix}",
                                 None)
                if setter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_void_p], None
                    setter(_threads.openblas_callback())
                    _callback_setters.append(setter)
                    _routed = True
                    break
        return _routed


class single_threaded_blas:
    """Context manager: BLAS runs on one thread inside, as it was configured outside.

    Nested and concurrent uses share one setting; the last to leave restores it.
    """

    def __enter__(self):
        global _blas_users, _blas_saved
        _blas_controllers()
        with _lock:
            if _blas_users == 0:
                _blas_saved = [c.get_num_threads() for c in _blas]
                for c in _blas:
                    c.set_num_threads(1)
            _blas_users += 1
        return self

    def __exit__(self, *exc):
        global _blas_users
        with _lock:
            _blas_users -= 1
            if _blas_users == 0:
                for c, n in zip(_blas, _blas_saved):
                    c.set_num_threads(n)
        return False


def _warm_sgemm():
    """Rule 4 of the module doc: one 64x576x512 float32 GEMM in the calling thread, once."""
    a = np.ones((64, 576), dtype=np.float32)
    np.matmul(a, np.ones((576, 512), dtype=np.float32))
    _local.warm = True


def _slice(fn, a, z):
    """fn(a, z) in a worker thread that has run _warm_sgemm."""
    if not getattr(_local, "warm", False):
        _warm_sgemm()
    return fn(a, z)


# Elements of work below which run_slices(..., work=) stays in the calling thread: handing
# slices to the workers costs more than it saves there (measured on 2 cores).
PARALLEL_MIN = 1 << 15


def run_slices(fn, n, threads=None, work=None):
    """[fn(a, z) for each slice (a, z) of range(n)], the slices run in parallel.

    threads: how many slices (default: Numba's thread count). work: the
    number of elements the call touches, if given; below PARALLEL_MIN the
    whole range runs in the calling thread.

    fn must be safe to run concurrently on disjoint slices (it writes only
    to its own rows of shared outputs). Exceptions propagate after every
    slice has finished, so no worker still writes when the caller returns.
    A batch of one runs in the calling thread, BLAS keeping its threads.
    """
    if _routed is None:
        route_blas_threads()
    if work is not None and work < PARALLEL_MIN:
        threads = 1
    slices = split(n, threads or num_threads())
    if len(slices) == 1:  # one sample or one thread: BLAS may still use its own threads
        return [fn(*slices[0])]
    # One caller at a time hands slices to the workers; a nested call (fn calling
    # run_slices) or one from another thread meanwhile runs its slices in its own thread.
    if not _dispatch.acquire(blocking=False):
        with single_threaded_blas():
            return [_slice(fn, a, z) for a, z in slices]
    try:
        with single_threaded_blas():
            workers = _workers(len(slices) - 1)
            for w, (a, z) in zip(workers, slices[1:]):
                w.submit(_slice, fn, a, z)
            results, error = [], None
            try:
                results.append(_slice(fn, *slices[0]))
            except BaseException as e:
                error = e
            for w in workers:  # every slice finishes before anything propagates
                try:
                    results.append(w.join())
                except BaseException as e:
                    error = error or e
            if error is not None:
                raise error
            return results
    finally:
        _dispatch.release()
