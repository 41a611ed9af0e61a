"""How cdl's convolution and pooling kernels use threads: one pool, BLAS handed over.

A training step alternates BLAS calls (OpenBLAS's own threads) with compiled
loops. When the loops run on a second runtime's threads (OpenMP), the two
thread pools hand the cores back and forth dozens of times per layer, and
each hand-over costs a wake-up, or worse: OpenBLAS's idle threads spin for
about 0.1 s after every call, and on a busy machine every parallel region
waits for its slowest thread to be scheduled. Measured on 2 cores with other
jobs running, im2col + GEMM + col2im on OpenMP and OpenBLAS threads ran 5 to
100 times slower than on one thread.

So these kernels never nest two thread pools. ``run_slices`` cuts the batch
into one contiguous slice per thread and runs a serial function on each
slice: the calling thread takes the first, a persistent pool of Python
threads the rest (the compiled code releases the GIL). For the duration,
BLAS is limited to one thread (threadpoolctl), so every GEMM runs in the
thread that called it, on data that thread has just written to its cache.
One synchronisation per layer call instead of several per slice.

The thread count is Numba's: ``numba.set_num_threads(n)`` (or the
NUMBA_NUM_THREADS environment variable) sets it for cdl as a whole.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba

_lock = threading.Lock()
_pool = None
_pool_key = None        # (pid, workers) the pool was made for
_blas = None            # threadpoolctl controllers of the loaded BLAS libraries
_blas_users = 0         # threads inside single_threaded_blas()
_blas_saved = []


def _after_fork_in_child():
    """A forked child has none of the parent's threads: fresh lock and pool, BLAS restored."""
    global _lock, _pool, _pool_key, _blas_users
    _lock, _pool, _pool_key = threading.Lock(), None, None
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


def _workers(count):
    """The pool of ``count`` worker threads, rebuilt for a new thread count (or process)."""
    global _pool, _pool_key
    key = (os.getpid(), count)
    with _lock:
        if _pool_key != key:
            _pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="cdl")
            _pool_key = key
        return _pool


class single_threaded_blas:
    """Context manager: BLAS runs on one thread inside, as it was configured outside.

    Nested and concurrent uses share one setting; the last to leave restores it.
    """

    def __enter__(self):
        global _blas, _blas_users, _blas_saved
        with _lock:
            if _blas is None:
                from threadpoolctl import ThreadpoolController
                _blas = [c for c in ThreadpoolController().lib_controllers
                         if c.user_api == "blas"]
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


def run_slices(fn, n, threads=None):
    """[fn(a, z) for each slice (a, z) of range(n)], the slices run in parallel.

    fn must be safe to run concurrently on disjoint slices (it writes only
    to its own rows of shared outputs). Exceptions propagate after every
    slice has finished, so no worker still writes when the caller returns.
    A batch of one runs in the calling thread, BLAS keeping its threads.
    """
    slices = split(n, threads or num_threads())
    if len(slices) == 1:  # one sample or one thread: BLAS may still use its own threads
        return [fn(*slices[0])]
    with single_threaded_blas():
        pool = _workers(len(slices) - 1)
        futures = [pool.submit(fn, a, z) for a, z in slices[1:]]
        try:
            first = fn(*slices[0])
        finally:
            wait(futures)
        return [first] + [f.result() for f in futures]
