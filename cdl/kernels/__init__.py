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
argument types it is called with (the slowest, the direct and Winograd
convolutions, in a second process: ``ahead.py``), and later processes load
it from Numba's disk cache (``__pycache__`` next to these files, or Numba's user-wide cache
directory when the package is installed read-only, or NUMBA_CACHE_DIR). Two
locators, for this folder's files only, refine Numba's choice:

- Numba reuses a cached kernel while its own file is unchanged, but compiled
  into it are the functions and constants it uses from other files
  (``_binary_tiles._popcount`` in ``_binary_hybrid``). ``_KernelsLocator`` keeps
  Numba's cache folder and adds to the source stamp a hash of every cdl file the
  kernel's file imports from (transitively within this folder): editing one
  recompiles the kernels that import it, instead of loading stale machine code.
- Where no cache folder is writable, Numba refuses ``cache=True`` at import;
  ``_PrivateCacheLocator`` then keeps the cache in a directory of this user's
  own under the temporary directory, so cdl still imports, and still compiles
  each kernel once per machine rather than per process.

A damaged cache file (an index or data file that does not unpickle: a disk
error, a copy cut short) makes Numba raise at the kernel's first call; cdl's
dispatchers read theirs through ``_TolerantCacheFile`` instead, which counts
such a file as a miss (with one warning): the kernel recompiles and its entry
is written afresh.
"""
import ast
import hashlib
import importlib
import os
import stat
import sys
import tempfile
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE = os.path.dirname(_HERE)  # cdl/
_private_dir = None
_stamps = {}  # file -> hash of it and of the cdl files it imports from, transitively
_imports = {}  # file -> the cdl files it imports from


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


def _module_file(name):
    """The source file of cdl module `name`; "" for an extension module; None if no module."""
    base = os.path.join(_PACKAGE, *name.split(".")[1:])
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    folder, stem = os.path.split(base)
    if os.path.isdir(folder) and any(f.startswith(stem + ".") for f in os.listdir(folder)):
        return ""  # compiled (cdl._im2col): nothing Numba can compile into a kernel
    return None


def _cdl_imports(path):
    """The cdl source files that the module at path imports from (at any indentation)."""
    if path in _imports:
        return _imports[path]
    with open(path, encoding="utf-8") as f:
        lines = iter(f.read().splitlines())
    files = set()
    for line in lines:
        statement = line.strip()
        if not statement.startswith(("from cdl", "import cdl")):
            continue
        while statement.endswith("\\") or statement.count("(") > statement.count(")"):
            statement = statement.rstrip("\\") + " " + next(lines, ")").strip()
        try:
            node = ast.parse(statement).body[0]  # the import alone: parsing files is slow
        except SyntaxError:
            continue  # prose in a docstring
        if isinstance(node, ast.ImportFrom):
            # from cdl.kernels import tuner: the submodule; from cdl import __version__: cdl
            found = [_module_file(f"{node.module}.{a.name}") for a in node.names]
            if None in found:
                found.append(_module_file(node.module))
        else:
            found = [_module_file(a.name) for a in node.names]
        files.update(f for f in found if f)
    _imports[path] = files
    return files


def _dependency_stamp(path):
    """sha256 over path and the cdl files it imports from: transitively within this folder
    (kernels compile in each other's functions), one step outside it (constants)."""
    path = os.path.abspath(path)
    if path not in _stamps:
        seen, todo = set(), [path]
        while todo:
            f = todo.pop()
            if f not in seen:
                seen.add(f)
                if os.path.dirname(f) == _HERE:
                    todo += _cdl_imports(f)
        h = hashlib.sha256()
        for f in sorted(seen):
            with open(f, "rb") as src:
                h.update(os.path.relpath(f, _PACKAGE).encode() + b"\0" + src.read())
        _stamps[path] = h.hexdigest()
    return _stamps[path]


class _Stamped:
    """Numba's locator for a kernel, its source stamp extended by _dependency_stamp."""

    def __init__(self, locator, py_file):
        self._locator = locator
        self._deps = _dependency_stamp(py_file)

    def __getattr__(self, name):  # cache path, disambiguator, _py_file: Numba's locator's
        return getattr(self._locator, name)

    def get_source_stamp(self):
        return self._locator.get_source_stamp(), self._deps


def _install_locators():
    """Put _KernelsLocator first and _PrivateCacheLocator last in Numba's locator list; both
    answer None for any file outside this folder (other packages: Numba's behaviour)."""
    from numba.core import caching
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    base = (getattr(caching, "_SourceFileBackedLocatorMixin", None),
            getattr(caching, "_CacheLocator", None))
    if impl is None or None in base:  # a Numba whose internals moved: its own behaviour
        return

    class _KernelsLocator:
        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != _HERE:
                return None
            for other in impl._locator_classes:
                if other.__name__ != "_KernelsLocator":
                    locator = other.from_function(py_func, py_file)
                    if locator is not None:
                        return _Stamped(locator, py_file)
            return None

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
                return None
            try:
                return super().from_function(py_func, py_file)
            except OSError:  # no writable temporary directory either: Numba's error
                return None

    names = [c.__name__ for c in impl._locator_classes]
    if "_KernelsLocator" not in names:  # once per process (a reloaded module sees them)
        impl._locator_classes.insert(0, _KernelsLocator)
        impl._locator_classes.append(_PrivateCacheLocator)


_install_locators()

KERNEL_MODULES = ("memory", "activation", "dense", "conv", "pool", "norm", "optim", "dropout",
                  "binarize", "binary", "elementwise", "loss", "im2col", "augment", "precision")

__all__ = []
for _name in KERNEL_MODULES:
    _module = importlib.import_module(f"cdl.kernels.{_name}")
    for _kernel in _module.__all__:
        globals()[_kernel] = getattr(_module, _kernel)
        __all__.append(_kernel)
del _name, _module, _kernel


def _tolerate_damaged_cache_files():
    """Give every cached dispatcher of this folder's modules a _TolerantCacheFile."""
    from numba.core import caching
    from numba.core.dispatcher import Dispatcher
    IndexDataCacheFile = getattr(caching, "IndexDataCacheFile", None)
    if IndexDataCacheFile is None:  # a Numba whose internals moved: its own behaviour
        return
    warned = set()

    class _TolerantCacheFile(IndexDataCacheFile):
        def _load_index(self):
            return self._or_miss(super()._load_index, self._index_path, {})

        def _load_data(self, name):
            return self._or_miss(super()._load_data, self._data_path(name), None, name)

        @staticmethod
        def _or_miss(load, path, miss, *args):
            try:
                return load(*args)
            except OSError:
                raise  # Numba's handling (a missing file is a miss already)
            except Exception as e:  # whatever garbage makes pickle raise
                if path not in warned:  # saving reads the index again
                    warned.add(path)
                    warnings.warn(f"cdl: ignoring the damaged Numba cache file {path} ({e!r}); "
                                  f"the kernel recompiles", RuntimeWarning, stacklevel=2)
                return miss

    for name, module in list(sys.modules.items()):
        if name.startswith(__name__ + ".") and module is not None:
            for obj in vars(module).values():
                if isinstance(obj, Dispatcher):
                    cache_file = getattr(obj._cache, "_cache_file", None)
                    if type(cache_file) is IndexDataCacheFile:
                        cache_file.__class__ = _TolerantCacheFile  # this dispatcher's only


_tolerate_damaged_cache_files()
