"""cdl/__init__.py: a lazy top level (PEP 562); and, in fresh processes, kernels that load
however cdl is installed and whatever its Numba cache holds (cdl/kernels/__init__.py's
locators and tolerant cache files, seen from outside).

The subprocess tests start Python afresh (what `import cdl` loads, caches on disk), so they
are marked slow. Each runs a copy of the package, passed on PYTHONPATH ahead of the
installed cdl. A read-only install is simulated by a regular file named __pycache__ in
every folder of the copy and a user cache path below a regular file: creating a directory
there fails with the OSError a read-only folder gives, for root too (as root, chmod does
not stop writes); a read-only bind mount of the copy (unshare -m) behaves the same.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

import cdl

# Subpackages DESIGN.md's contract reaches as attributes of a plain `import cdl`.
CONTRACT = ("layers", "ops", "optim", "data", "models", "binary", "cuda", "distributed", "tune",
            "viz", "init", "kernels", "gradcheck")
NAMES = {"Sequential": "cdl.model", "load": "cdl.model", "Trainer": "cdl.train",
         "Callback": "cdl.train", "seed": "cdl.init", "set_blas_policy": "cdl.kernels.parallel",
         "export_onnx": "cdl.onnx"}


def _run(code, env=None, cwd=None):
    """stdout of `python -c code` (raises with its stderr when it fails)."""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=cwd, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return res.stdout


def test_top_level_names_are_the_defining_modules_objects():
    for name, module in NAMES.items():
        assert getattr(cdl, name) is getattr(sys.modules[module], name), name
    from cdl import Sequential, Trainer, export_onnx, seed  # PEP 562: from-import works too
    assert (Sequential, Trainer, export_onnx, seed) == (cdl.Sequential, cdl.Trainer,
                                                       cdl.export_onnx, cdl.seed)
    assert cdl.__version__ == "0.1.0"


def test_star_import_and_dir_cover_all():
    namespace = {}
    exec("from cdl import *", namespace)
    assert set(cdl.__all__) <= set(namespace)
    assert set(cdl.__all__) | {"model", "train"} <= set(dir(cdl))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'cdl' has no attribute 'no_such_thing'"):
        cdl.no_such_thing  # noqa: B018
    with pytest.raises(ImportError, match="no_such_thing"):
        exec("from cdl import no_such_thing", {})
    assert not hasattr(cdl, "__wrapped__")  # dunders never try an import


@pytest.mark.slow  # a fresh interpreter
def test_import_cdl_loads_nothing_and_everything_on_first_access():
    code = f"""
import json, sys
before = set(sys.modules)
import cdl
out = {{"new": sorted(set(sys.modules) - before)}}
for name in {CONTRACT!r}:
    module = getattr(cdl, name)
    assert module is sys.modules["cdl." + name], name
out["mpi4py"] = "mpi4py" in sys.modules
out["heavy"] = sorted(m for m in ("matplotlib", "onnx", "optuna", "torch") if m in sys.modules)
from cdl import Sequential, set_blas_policy
print(json.dumps(out))
"""
    out = json.loads(_run(code))
    assert out["new"] == ["cdl"]  # no NumPy, no Numba, no cdl submodule
    assert not out["mpi4py"]  # cdl.distributed imports mpi4py in init(), not at access
    assert out["heavy"] == []


@pytest.mark.slow  # a fresh interpreter
def test_missing_dependency_of_a_submodule_is_not_hidden():
    """A submodule that exists but cannot import says what is missing (not "no attribute")."""
    code = ("import sys; sys.modules['numba'] = None; import cdl\n"
            "try:\n    cdl.kernels\n"
            "except ModuleNotFoundError as e:\n    print(e.name.split('.')[0])")
    assert _run(code).strip() == "numba"


def _copy_package(root):
    """A copy of the cdl package (compiled extension included, no caches) under root/site."""
    site = os.path.join(root, "site")
    shutil.copytree(os.path.dirname(cdl.__file__), os.path.join(site, "cdl"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _block_pycache(site):
    for folder, dirs, _ in os.walk(os.path.join(site, "cdl")):
        open(os.path.join(folder, "__pycache__"), "w").close()


def _env(site, tmp, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env.update(PYTHONPATH=site, TMPDIR=str(tmp), **extra)
    return env


# A conv layer's forward against the NumPy reference; where Numba keeps the kernels it ran.
_CONV = """
import gc, json, numpy as np, cdl
from numba.core.dispatcher import Dispatcher
from cdl.kernels import reference
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
layer = cdl.layers.Conv2D(3, 4, 3, pad=1, rng=0)
y = layer.forward(x)
want = reference.conv2d_forward(x, layer.params["W"], layer.params["b"], 1, 1, 1, 1)
used = [d for d in gc.get_objects() if isinstance(d, Dispatcher)
        and d.py_func.__module__.startswith("cdl.kernels.") and d.signatures]
print(json.dumps({"file": cdl.__file__, "ok": bool(np.allclose(y, want, atol=1e-5)),
                  "locators": sorted({type(d._cache._impl._locator._locator).__name__
                                      .lstrip("_") for d in used}),  # older Numba: _UserWide...
                  "paths": sorted({d.stats.cache_path for d in used}),
                  "hits": sum(sum(d.stats.cache_hits.values()) for d in used),
                  "misses": sum(sum(d.stats.cache_misses.values()) for d in used)}))
"""


@pytest.mark.slow  # fresh interpreters compiling kernels
@pytest.mark.parametrize("user_cache", ["writable", "unwritable"])
def test_read_only_install(tmp_path, user_cache):
    """Kernels next to an unwritable __pycache__ cache in Numba's user-wide directory, or,
    with that unwritable too, in cdl's private fallback; a second process loads them."""
    site = _copy_package(tmp_path)
    _block_pycache(site)
    open(tmp_path / "file", "w").close()
    cache_home = tmp_path / ("xdg" if user_cache == "writable" else "file/xdg")
    env = _env(site, tmp_path, XDG_CACHE_HOME=str(cache_home), HOME=str(tmp_path / "file/home"))
    first, second = (json.loads(_run(_CONV, env, cwd=tmp_path)) for _ in range(2))
    assert first["file"].startswith(site)
    assert first["ok"] and second["ok"]
    if user_cache == "writable":
        assert first["locators"] == ["UserWideCacheLocator"]
        root = cache_home / "numba"
    else:
        assert first["locators"] == ["PrivateCacheLocator"]
        root = tmp_path / f"cdl-numba-{os.getuid()}"
    assert all(p.startswith(str(root)) and os.listdir(p) for p in first["paths"])
    assert first["misses"] > 0 and first["hits"] == 0  # compiled, then
    assert second["misses"] == 0 and second["hits"] == first["misses"]  # loaded


_RELU = ("import json, numpy as np, cdl\n"
         "y = cdl.layers.ReLU().forward(np.array([-1, 2, 3], np.float32))\n"
         "d = cdl.kernels.activation._relu_forward\n"
         "print(json.dumps([y.tolist(), sum(d.stats.cache_hits.values())]))")


def _edit(path, old=None, new=None):
    """Replace the one occurrence of old in the file (new None: append a comment line);
    the modification time goes back a second, so only the content says it changed."""
    with open(path) as f:
        text = f.read()
    assert new is None or text.count(old) == 1
    with open(path, "w") as f:
        f.write(text + "# edited\n" if new is None else text.replace(old, new))
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))  # older, not newer


@pytest.mark.slow  # fresh interpreters compiling kernels
def test_stale_cache_recompiles(tmp_path):
    """A cache written for other source code is not loaded: the kernel recompiles from the
    source at hand and gives its results (here, a ReLU edited to add 1)."""
    site = _copy_package(tmp_path)
    env = _env(site, tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    assert json.loads(_run(_RELU, env, cwd=tmp_path)) == [[0, 2, 3], 0]
    assert json.loads(_run(_RELU, env, cwd=tmp_path)) == [[0, 2, 3], 1]
    _edit(os.path.join(site, "cdl", "kernels", "activation.py"),
          "ys[i] = v if v > 0 else v - v", "ys[i] = v + 1 if v > 0 else v - v")
    assert json.loads(_run(_RELU, env, cwd=tmp_path)) == [[0, 3, 4], 0]


@pytest.mark.slow  # fresh interpreters compiling kernels
def test_cache_is_stale_when_an_imported_file_changes(tmp_path):
    """Numba checks a kernel's own file only; cdl's stamp adds the cdl files it imports
    from (activation.py imports parallel.py), whose functions and constants Numba would
    have compiled into it."""
    site = _copy_package(tmp_path)
    env = _env(site, tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    assert json.loads(_run(_RELU, env, cwd=tmp_path)) == [[0, 2, 3], 0]
    _edit(os.path.join(site, "cdl", "kernels", "reference.py"))
    assert json.loads(_run(_RELU, env, cwd=tmp_path)) == [[0, 2, 3], 1]  # not imported
    _edit(os.path.join(site, "cdl", "kernels", "parallel.py"))
    assert json.loads(_run(_RELU, env, cwd=tmp_path)) == [[0, 2, 3], 0]  # recompiled


@pytest.mark.slow  # fresh interpreters compiling kernels
@pytest.mark.parametrize("damage", ["truncated index", "garbage data", "empty data"])
def test_damaged_cache_file_recompiles(tmp_path, damage):
    """A cache file that does not unpickle is a miss, with a warning naming it; the entry
    is written afresh, so the process after loads it again."""
    site = _copy_package(tmp_path)
    numba_dir = tmp_path / "numba"
    env = _env(site, tmp_path, NUMBA_CACHE_DIR=str(numba_dir))
    assert json.loads(_run(_RELU, env, cwd=tmp_path)) == [[0, 2, 3], 0]
    suffix = ".nbi" if damage == "truncated index" else ".nbc"
    files = list(numba_dir.glob(f"*/activation._relu_forward-*{suffix}"))
    assert len(files) == 1
    files[0].write_bytes({"truncated index": files[0].read_bytes()[:20],
                          "garbage data": b"garbage\n", "empty data": b""}[damage])
    res = subprocess.run([sys.executable, "-c", _RELU], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert json.loads(res.stdout) == [[0, 2, 3], 0]
    assert res.stderr.count("RuntimeWarning: cdl: ignoring the damaged Numba cache file") == 1
    assert files[0].name in res.stderr
    assert json.loads(_run(_RELU, env, cwd=tmp_path)) == [[0, 2, 3], 1]
