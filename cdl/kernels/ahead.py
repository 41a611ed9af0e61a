"""Compiling ahead: the slow-to-compile convolution kernels compile in a second process.

The first call of a kernel in a fresh install compiles it: seconds for the
direct and Winograd convolutions (about 2.5 s for each of direct's forward
and backward, 1 s for each Winograd transform), milliseconds to load it from
Numba's cache ever after. Rather than stall the first training step on them,
cdl compiles them in a child process, beside the user's program, and runs
what is compiled meanwhile:

- A convolution whose algorithm (the heuristic's pick, cdl.kernels.conv) is
  not compiled yet, for its dtype, starts the child for that dtype (once per
  process) and runs "gemm" (im2col + BLAS, nothing slow to compile) until the
  child is done; the same happens where the algorithm is compiled but another
  applicable one is not, so that the tuner can time them all.
- While the child runs, no choice is recorded: each call runs the heuristic's
  pick where compiled, else "gemm". Once it has finished, the next call of each
  geometry is tuned as usual (cdl.kernels.tuner) with every algorithm
  compiled, loaded from the cache the child filled.
- The child (``python -m cdl.kernels.ahead --dtype float32``) runs at a lower
  priority (nice 10), compiles the direct and Winograd kernels for the dtype
  on tiny arrays (the kernels' types do not depend on sizes) into Numba's
  cache, and exits. One child at a time per cache folder: others wait for its
  lock (a file in the folder), then find everything compiled. A child still
  running when the program exits finishes (a short script would otherwise
  stop it every time before its work is saved) and exits: it holds none of
  the program's files or pipes, so nothing waits for it.
- If it fails, the calls compile what they need themselves, as without it.
- Only with the tuner's policy "measure" (the default), whose choices depend
  on timings anyway: under "heuristic" (cdl.kernels.tuner.set_policy) every
  call runs the heuristic's pick from the first, compiling it in place, so
  that the algorithms a run uses, and so its rounding, never depend on the
  state of the cache.

Off with ``CDL_COMPILE_AHEAD=0`` in the environment or ``set_enabled(False)``
(then the first call compiles its algorithm in the calling process), and
where no second process can be started: one CPU, or a ``sys.executable`` that
is not a Python interpreter (an embedding application).
"""
import functools
import os
import subprocess
import sys
import threading

__all__ = ["DTYPES", "enabled", "set_enabled", "running", "start", "wait", "compile_all"]

DTYPES = ("float32", "float64")  # what the child compiles for (others compile in place)

_lock = threading.Lock()
_children = {}  # dtype name -> subprocess.Popen (this process's; reset in a forked child)
_enabled = os.environ.get("CDL_COMPILE_AHEAD", "1").strip().lower() not in ("0", "false",
                                                                           "no", "off")


def _after_fork_in_child():
    global _lock, _children
    _lock, _children = threading.Lock(), {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def enabled():
    """Whether slow kernels compile in a second process (see the module docstring)."""
    return _enabled and _can_spawn(sys.executable)


def set_enabled(flag):
    """Turn compiling ahead on or off for this process; returns the previous setting. Off
    does not stop a child already started (``wait`` for it, or let it finish)."""
    global _enabled
    before, _enabled = _enabled, bool(flag)
    return before


@functools.lru_cache(maxsize=4)
def _can_spawn(exe):
    exe = exe or ""
    return ((os.cpu_count() or 1) > 1 and os.path.isfile(exe)
            and "python" in os.path.basename(exe).lower())


def _name(dtype):
    import numpy as np
    return np.dtype(dtype).name


def running(dtype):
    """True while this process's child for dtype compiles (False if none was started)."""
    if not _children:
        return False
    child = _children.get(_name(dtype))
    return child is not None and child.poll() is None


def start(dtype):
    """Start the child for dtype unless one was started already (or compiling ahead is off);
    returns whether one is running now."""
    name = _name(dtype)
    if name in _children:
        return running(name)
    if name not in DTYPES or not enabled():
        return False
    with _lock:
        if name not in _children:
            _children[name] = _spawn(name)
    return running(name)


def _spawn(name):
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))))  # cdl/kernels/ahead.py -> the folder that holds cdl/
    env = dict(os.environ, CDL_COMPILE_AHEAD="0", CDL_ALGO_POLICY="heuristic",
               PYTHONPATH=os.pathsep.join(p for p in (package_parent,
                                                      os.environ.get("PYTHONPATH")) if p))
    try:  # no pipes or other files of ours: a caller reading our output never waits for it
        return subprocess.Popen([sys.executable, "-m", "cdl.kernels.ahead", "--dtype", name],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, close_fds=True)
    except OSError:
        return _Failed()


class _Failed:
    """A child that could not start: not running, so the caller compiles for itself."""
    returncode = -1

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


def wait(timeout=None):
    """Wait for this process's children (all dtypes); returns True if none runs any more."""
    try:
        for child in list(_children.values()):
            child.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


# -- the child ------------------------------------------------------------------------

def _lock_file():
    """An open file in the kernels' Numba cache folder, locked for this process: one child
    compiles at a time per cache (MPI ranks or test workers started together wait)."""
    import tempfile

    from cdl.kernels import conv_direct
    folder = getattr(getattr(conv_direct.forward_slice, "_cache", None), "_cache_path",
                     None) or tempfile.gettempdir()
    os.makedirs(folder, exist_ok=True)
    f = open(os.path.join(folder, "cdl-compile-ahead.lock"), "a")
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): children may compile side by side
        return f
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def compile_all(dtype):
    """Compile (or load) the direct and Winograd kernels for dtype by running each algorithm
    forward and backward, with and without dx, on tiny arrays."""
    import numpy as np

    from cdl.kernels import conv
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 6, 6)).astype(dtype)
    W = rng.standard_normal((4, 2, 3, 3)).astype(dtype)
    b = np.zeros(4, dtype=dtype)
    y = np.empty((2, 4, 6, 6), dtype=dtype)
    for algo in ("direct", "winograd"):
        with conv.forced_algorithm(algo):
            conv.conv2d_forward(x, W, b, (1, 1), (1, 1), y)
            for dx in (np.empty_like(x), None):
                conv.conv2d_backward(y, x, W, (1, 1), (1, 1), dx, np.empty_like(W),
                                     np.empty_like(b))


def _main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="python -m cdl.kernels.ahead",
                                description="Compile cdl's direct and Winograd convolution "
                                            "kernels into Numba's cache.")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--nice", type=int, default=10, help="lower this process's priority by")
    args = p.parse_args(argv)
    if args.nice and hasattr(os, "nice"):
        os.nice(args.nice)
    with _lock_file():
        compile_all(args.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
