"""The API reference: every public callable has a docstring, every constructor argument
of the layers, models and optimizers is described, and pdoc builds the HTML without a
warning.

The public API is every module under cdl/ with no leading underscore in any part of its
name, and in each module the names of its ``__all__`` (without ``__all__``: the public
names it defines itself); for a class, also the public methods and properties defined in
its body. "Has a docstring" means what ``help()`` and pdoc show, ``inspect.getdoc``: an
override without a docstring of its own shows the docstring of the method it overrides
(``Conv2D.forward`` shows ``Layer.forward``'s statement of the layer protocol), which is
what a reader needs when the override changes nothing the base states. A method whose
base states nothing (the losses' ``forward``/``backward``) needs its own.

Importing a public module needs only cdl's required dependencies: matplotlib (cdl.viz),
onnx (cdl.onnx), mpi4py (cdl.distributed), optuna (cdl.tune) and CuPy are imported on
first use, so the walk and pdoc run with all of them (and the tests' oracles) blocked.
The CUDA twins (cdl.cuda.*) import numba.cuda, which ships with numba (or comes from
numba-cuda, the [cuda] extra); where there is none, they are left out of the walk.

Build the reference: ``python tests/test_docs.py [OUTDIR]`` (default docs/api), which runs
pdoc on every public module (pdoc alone follows ``__all__`` and so skips modules such as
cdl.model and cdl.train that cdl's ``__all__`` does not name).
"""
import importlib
import importlib.util
import inspect
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import cdl

# Optional dependencies (extras, and the oracles of the tests): blocked in the
# subprocesses below to show that no public module needs them at import.
EXTRAS = ("matplotlib", "onnx", "onnxruntime", "mpi4py", "optuna", "torch", "scipy", "cupy",
          "hypothesis")

BLOCK = "import sys\nfor _m in {!r}: sys.modules[_m] = None\n".format(EXTRAS)


def _reraise(name):
    raise  # pkgutil calls this inside its except clause: a package that fails to import


def public_modules():
    """Names of cdl's public modules, sorted (parents before their submodules)."""
    names = ["cdl"] + [m.name for m in pkgutil.walk_packages(cdl.__path__, "cdl.", _reraise)
                       if not any(part.startswith("_") for part in m.name.split("."))]
    if importlib.util.find_spec("numba.cuda") is None:  # a numba without its CUDA target
        names = [n for n in names if not n.startswith("cdl.cuda.")]
    return sorted(names)


def pdoc_argv(outdir, modules):
    """pdoc's command line for the modules (public_modules()) into outdir.

    pdoc adds the submodules a package's ``__all__`` names along with it; each "!" pattern
    drops those again right away, so that every module comes from its own name once
    (twice would be a warning)."""
    argv = [sys.executable, "-m", "pdoc", "-o", str(outdir)]
    for name in modules:
        argv += [name, "!" + re.escape(name) + r"\..*"]
    return argv


def _members(mod):
    """(name, object) of mod's public API: its __all__, else the public names it defines."""
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, v in vars(mod).items()
                 if not n.startswith("_") and getattr(v, "__module__", None) == mod.__name__]
    for name in names:
        yield name, getattr(mod, name)


def _undocumented():
    """(total checked, names whose help() would show no docstring)."""
    seen, missing, total = set(), [], 0

    def check(qualname, obj, doc):
        nonlocal total
        total += 1
        if not (doc or "").strip():
            missing.append(qualname)

    for modname in public_modules():
        mod = importlib.import_module(modname)
        check(modname, mod, mod.__doc__)
        for name, obj in _members(mod):
            if isinstance(obj, types.ModuleType) or not callable(obj) or id(obj) in seen:
                continue  # submodules are walked themselves; constants carry no docstring
            seen.add(id(obj))
            qualname = f"{getattr(obj, '__module__', modname)}.{getattr(obj, '__qualname__', name)}"
            check(qualname, obj, inspect.getdoc(obj))
            if not inspect.isclass(obj):
                continue
            for attr, raw in vars(obj).items():
                if attr.startswith("_") or id(raw) in seen:
                    continue
                if isinstance(raw, property):
                    doc = inspect.getdoc(raw)
                elif isinstance(raw, (staticmethod, classmethod)) or callable(raw):
                    doc = inspect.getdoc(getattr(obj, attr))  # inherits an override's doc
                else:
                    continue  # class attributes (data) carry no docstring
                seen.add(id(raw))
                check(f"{qualname}.{attr}", raw, doc)
    return total, missing


def test_public_modules_import_without_the_extras():
    code = BLOCK + "import importlib\nfor m in {!r}: importlib.import_module(m)\n".format(
        public_modules())
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_every_public_callable_has_a_docstring():
    total, missing = _undocumented()
    assert total > 500, total  # the walk found the API (about 800 names today)
    assert not missing, f"{len(missing)} of {total} public names lack a docstring:\n" + \
        "\n".join(missing)


def _documented_by(obj):
    """The callable whose parameters a reader must find described, and the text that
    describes them: a class's docstring and its __init__'s (help() shows both)."""
    if inspect.isclass(obj):
        doc = obj.__doc__ or ""
        init = obj.__dict__.get("__init__")
        return obj, doc + "\n" + ((init.__doc__ or "") if init else "")
    return obj, obj.__doc__ or ""


def _constructors():
    for pkg in ("cdl.layers", "cdl.models", "cdl.optim"):
        mod = importlib.import_module(pkg)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not isinstance(obj, types.ModuleType):
                yield f"{pkg}.{name}", obj


def _undescribed(callables):
    """(number checked, lines "name(signature): arguments" for the arguments that the
    docstrings do not name)."""
    lines, checked = [], 0
    for qualname, obj in callables:
        target, doc = _documented_by(obj)
        params = [p for p in inspect.signature(target).parameters if p != "self"]
        checked += 1
        # A parameter counts as described where its name stands as a word in the text
        # (not as an attribute: "self.rng" does not describe rng).
        lacking = [p for p in params if not re.search(rf"(?<![\w.]){re.escape(p)}(?!\w)", doc)]
        if lacking:
            lines.append(f"{qualname}{inspect.signature(target)}: {', '.join(lacking)}")
    return checked, lines


def _public_callables():
    """(qualified name, class or function) of the public API outside the kernel modules."""
    seen = set()
    for modname in public_modules():
        if modname.startswith(("cdl.kernels", "cdl.cuda")):
            continue  # kernels: arrays in and out and shape ints, as each module docstring says
        for name, obj in _members(importlib.import_module(modname)):
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue  # exceptions take their message
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                yield f"{obj.__module__}.{obj.__qualname__}", obj


def test_public_callables_document_every_argument():
    """Beyond the constructors: every public class and function outside the kernels."""
    checked, undescribed = _undescribed(_public_callables())
    assert checked > 200, checked
    assert not undescribed, "arguments not described in the docstrings:\n" + \
        "\n".join(undescribed)


def test_constructors_document_every_argument():
    """The layers, models and optimizers (help(L.Conv2D) names every argument)."""
    checked, undescribed = _undescribed(_constructors())
    assert checked > 60, checked
    assert not undescribed, "arguments not described in the docstrings:\n" + \
        "\n".join(undescribed)


@pytest.mark.slow
def test_pdoc_builds_without_warnings(tmp_path):
    pytest.importorskip("pdoc")
    modules = public_modules()
    argv = pdoc_argv(tmp_path, modules)
    # pdoc's command line, in a process where the extras cannot be imported
    code = BLOCK + "sys.argv = {!r}\nfrom pdoc.__main__ import cli\ncli()\n".format(
        ["pdoc", *argv[3:]])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    # pdoc reports every problem (import errors, bad annotations, broken links,
    # duplicate modules) as a warning on stderr
    assert run.stderr.strip() == "", run.stderr
    pages = {str(p.relative_to(tmp_path).with_suffix("")).replace("/", ".")
             for p in tmp_path.rglob("*.html")} - {"index"}
    assert pages == set(modules)


def main(argv):
    outdir = Path(argv[1] if len(argv) > 1 else "docs/api")
    return subprocess.call(pdoc_argv(outdir, public_modules()))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
