"""CPU kernels: pure functions on arrays, found by name via cdl.backend.

The kernel contract, shared with the numba.cuda twins in ``cdl.cuda`` (same
module names, same function names, same argument order):

- A kernel takes arrays and plain numbers (Python ints and floats, a NumPy
  Generator where it draws random numbers) and writes its results into
  arrays the caller supplies (the last arguments: ``y``, ``dx``, ``out``...),
  returning them (one array, or a tuple). It never allocates its outputs;
  scratch space it needs inside comes from the same backend. A result that
  is one number (a loss) is returned as a Python float: the only value a
  training step brings back from the GPU.
- Allocation goes through the same namespace: ``empty``, ``zeros``,
  ``empty_like``, ``zeros_like``, ``fill``, ``copy`` (``cdl.kernels.memory``).
- Kernels trust their inputs (layers and ops check shapes and dtypes first),
  except where a module says otherwise.
- CPU-only choices (conv algorithm, thread counts) are not arguments: they
  are made inside the CPU kernels or set through their modules' functions.

Each module lists its kernels in ``__all__``; this package exports them all,
and a test checks that ``cdl.cuda`` has a twin of each (KERNEL_MODULES).
``reference.py`` has slow, obvious NumPy versions that the tests use as
oracles; ``parallel.py`` is the CPU threading policy.

Every kernel is ``@njit(cache=True)``: it compiles on first use, for the
argument types it is called with, and later processes load it from Numba's
disk cache (``__pycache__`` next to these files, or Numba's user-wide cache
directory when the package is installed read-only, or NUMBA_CACHE_DIR). Where
none of those is writable Numba refuses ``cache=True`` at import; for this
folder's files only, ``_PrivateCacheLocator`` then keeps the cache in a
directory of this user's own under the temporary directory, so cdl still
imports, and still compiles each kernel once per machine rather than per process.
"""
import importlib
import os
import stat
import tempfile
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))
_private_dir = None


def _private_cache_dir():
    """<tmp>/cdl-numba-<uid>, created 0700; a fresh per-process directory if that one is
    not ours alone (a cache that others can write could hand us their machine code)."""
    global _private_dir
    if _private_dir is None:
        path = None
        if hasattr(os, "getuid"):
            path = os.path.join(tempfile.gettempdir(), f"cdl-numba-{os.getuid()}")
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
                st = os.lstat(path)
                if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid()
                        or st.st_mode & 0o022):
                    path = None
            except OSError:
                path = None
        if path is None:
            import atexit
            import shutil
            path = tempfile.mkdtemp(prefix="cdl-numba-")
            atexit.register(shutil.rmtree, path, True)
            warnings.warn(f"cdl: Numba can cache cdl's kernels neither next to them ({_HERE}) "
                          f"nor in its user cache directory: they compile in every process "
                          f"(cache in {path} until exit); set NUMBA_CACHE_DIR to a writable "
                          f"directory to keep them", RuntimeWarning, stacklevel=2)
        _private_dir = path
    return _private_dir


def _fallback_locator():
    """A Numba cache locator for the kernels of this folder, tried after Numba's own."""
    from numba.core import caching
    base = (caching._SourceFileBackedLocatorMixin, caching._CacheLocator)

    class _PrivateCacheLocator(*base):
        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(_private_cache_dir(),
                                            self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != _HERE:
                return None  # other packages' functions: Numba's behaviour, unchanged
            try:
                return super().from_function(py_func, py_file)
            except OSError:  # no writable temporary directory either: Numba's error
                return None

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # _CacheImpl in older Numba
    if not any(c.__name__ == "_PrivateCacheLocator" for c in impl._locator_classes):
        impl._locator_classes.append(_PrivateCacheLocator)


_fallback_locator()

KERNEL_MODULES = ("memory", "activation", "dense", "conv", "pool", "norm", "optim", "dropout",
                  "binarize", "binary", "elementwise", "loss", "im2col", "augment", "precision")

__all__ = []
for _name in KERNEL_MODULES:
    _module = importlib.import_module(f"cdl.kernels.{_name}")
    for _kernel in _module.__all__:
        globals()[_kernel] = getattr(_module, _kernel)
        __all__.append(_kernel)
del _name, _module, _kernel
