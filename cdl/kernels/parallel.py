"""How cdl's CPU kernels share the cores: the threading policy.

cdl lives inside other people's programs, so it changes nothing process-wide
that it does not restore (no environment variables, no OpenMP wait policy, no
BLAS callbacks), and every kernel may be called from several Python threads at
once. Within that, a training step alternates BLAS calls with compiled loops,
and every thread pool that idles by spinning takes cores from the next one.
Three rules:

1. Convolution, pooling, normalization and the dense layers never nest two
   pools. ``run_slices`` cuts the batch into one contiguous slice per thread
   and runs a serial function on each: the calling thread takes the first
   slice, a persistent pool of Python threads the others (the compiled code
   releases the GIL). Inside, BLAS is held to one thread
   (``single_threaded_blas``), so each GEMM runs in the thread that just
   wrote its operands. One synchronisation per layer call.

2. cdl's own BLAS calls run inside ``run_slices`` (the dense layers' GEMMs
   too), so OpenBLAS's worker threads are never woken by cdl: after each
   call they spin for about 0.1 s and would take a core from the next
   kernel. OpenBLAS keeps one thread count for the whole process, so while
   a cdl kernel runs, BLAS calls made by other threads run on one thread as
   well (correct to rounding, and back to their setting as soon as cdl's call
   ends). ``set_blas_policy("leave")`` makes cdl never touch that count.

3. Every thread that runs a slice first runs one mid-sized single-threaded
   sgemm (``_warm_sgemm``, about 1 ms, once per thread). Measured with
   OpenBLAS 0.3.31 (Haswell kernels) on a Zen CPU: until a thread has run
   an sgemm of roughly 64x576x384 or more, its small single-threaded sgemms
   (the per-chunk GEMMs of a convolution) run about 3x slower, 13 instead
   of 40 GFLOP/s, and stay so however many of them it runs; DeepConvNet's
   64-channel layers took 2.5x longer. dgemm shows no such effect.

The thread count is Numba's: ``numba.set_num_threads(n)`` (or the
NUMBA_NUM_THREADS environment variable) sets it for cdl as a whole. The
bit-packed binary GEMM's "tiled" variant runs on these workers too; its other
variants and the binary packing kernels are Numba prange loops, on Numba's
threading layer with whatever settings the process has.

An earlier version handed OpenBLAS's parallel sections to OpenMP through
``openblas_set_threads_callback_function`` and set OMP_WAIT_POLICY=PASSIVE at
import: from then on, two Python threads calling BLAS at once got wrong results
or deadlocked, in code that never called cdl.
"""
import contextlib
import os
import threading

import numba
import numpy as np

_lock = threading.Lock()
_pool = []              # persistent _Worker threads of this process
_pool_pid = None
_dispatch = threading.Lock()  # held while run_slices hands out slices (see run_slices)
_blas = None            # _Blas of each loaded BLAS library (found on first use)
_blas_users = 0         # threads inside single_threaded_blas()
_blas_saved = []
_local = threading.local()  # per thread: has it run _warm_sgemm?
_hold_blas = True       # set_blas_policy(): run_slices holds BLAS to one thread


def _after_fork_in_child():
    """A forked child has none of the parent's threads: fresh locks and pool, BLAS restored."""
    global _lock, _pool, _pool_pid, _dispatch, _blas_users
    _lock, _pool, _pool_pid, _dispatch = threading.Lock(), [], None, threading.Lock()
    if _blas_users:  # forked from inside single_threaded_blas(): give BLAS its threads back
        _restore_blas()
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


def _openblas_symbol(lib, verb):
    """OpenBLAS's openblas_<verb>_num_threads under any of its builds' names, or None."""
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            fn = getattr(lib, f"{prefix}openblas_{verb}_num_threads{suffix}", None)
            if fn is not None:
                return fn
    return None


class _Blas:
    """get() and set(n) one loaded BLAS library's thread count.

    OpenBLAS built on its own pthreads keeps one count for the process and is
    called through its C API directly: threadpoolctl (3.7+) lets only the first
    Python thread that sets a limit change it, so from any other thread a
    limit would be silently ignored. Other libraries go through threadpoolctl.
    """

    def __init__(self, controller):
        self.filepath = controller.filepath
        self.get, self.set = controller.get_num_threads, controller.set_num_threads
        if controller.internal_api == "openblas" \
                and getattr(controller, "threading_layer", "") != "openmp":
            import ctypes
            lib = ctypes.CDLL(controller.filepath)
            get, set_ = _openblas_symbol(lib, "get"), _openblas_symbol(lib, "set")
            if get is not None and set_ is not None:
                get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                self.get, self.set = get, set_


def _blas_libraries():
    """The BLAS libraries loaded in this process (found once, then cached)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        found = [_Blas(c) for c in ThreadpoolController().lib_controllers
                 if c.user_api == "blas"]
        with _lock:
            if _blas is None:
                _blas = found
    return _blas


class single_threaded_blas:
    """Context manager: BLAS runs on one thread inside, as it was configured outside.

    Nested and concurrent uses (from any thread) share one setting; the last
    to leave restores it, unless someone else changed it meanwhile: then
    their setting stays.
    """

    def __enter__(self):
        global _blas_users, _blas_saved
        libs = _blas_libraries()
        with _lock:
            if _blas_users == 0:
                _blas_saved = [lib.get() for lib in libs]
                for lib in libs:
                    lib.set(1)
            _blas_users += 1
        return self

    def __exit__(self, *exc):
        global _blas_users
        with _lock:
            _blas_users -= 1
            if _blas_users == 0:
                _restore_blas()
        return False


def set_blas_policy(policy):
    """How cdl's parallel kernels treat the BLAS thread count; returns the previous policy.

    "hold" (the default): while a kernel runs its slices, BLAS is held to one
    thread, so the GEMMs of the slices do not compete for the cores; the
    count is restored when the last cdl kernel in the process ends, and BLAS
    calls from other threads meanwhile run on one thread too (OpenBLAS has
    one count per process). "leave": cdl never changes the count. Choose it
    when other threads of your program need all of BLAS's threads while cdl
    trains; cdl is then fastest with BLAS at one thread
    (``threadpoolctl.threadpool_limits(1)``), which you set yourself.
    """
    global _hold_blas
    if policy not in ("hold", "leave"):
        raise ValueError(f"set_blas_policy: policy must be 'hold' or 'leave', got {policy!r}")
    previous = "hold" if _hold_blas else "leave"
    _hold_blas = policy == "hold"
    return previous


def _held_blas():
    """single_threaded_blas() under the "hold" policy, else a context that does nothing."""
    return single_threaded_blas() if _hold_blas else contextlib.nullcontext()


def _restore_blas():
    """Give each BLAS library back its saved thread count where it still has cdl's 1."""
    for lib, n in zip(_blas, _blas_saved):
        if lib.get() == 1:
            lib.set(n)


def _warm_sgemm():
    """Rule 3 of the module doc: one 64x576x512 float32 GEMM in the calling thread, once."""
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
    if work is not None and work < PARALLEL_MIN:
        threads = 1
    slices = split(n, threads or num_threads())
    if len(slices) == 1:  # one sample or one thread: BLAS may still use its own threads
        return [fn(*slices[0])]
    # One caller at a time hands slices to the workers; a nested call (fn calling
    # run_slices) or one from another thread meanwhile runs its slices in its own thread.
    if not _dispatch.acquire(blocking=False):
        with _held_blas():
            return [_slice(fn, a, z) for a, z in slices]
    try:
        with _held_blas():
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
