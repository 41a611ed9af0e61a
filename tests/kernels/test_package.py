"""cdl.kernels as a package: every kernel module's names exported once, kernels compiled
lazily, and the private Numba cache folder used when no other is writable."""
import importlib
import os
import subprocess
import sys
import tempfile

import pytest

import cdl.kernels as K


def test_every_kernel_of_every_module_is_exported_once():
    names = []
    for name in K.KERNEL_MODULES:
        module = importlib.import_module(f"cdl.kernels.{name}")
        names += module.__all__
        for kernel in module.__all__:
            assert getattr(K, kernel) is getattr(module, kernel)
    assert sorted(names) == sorted(K.__all__) and len(names) == len(set(names))


@pytest.mark.slow  # a fresh interpreter imports cdl.kernels
def test_nothing_compiles_at_import():
    code = ("import cdl.kernels, sys\n"
            "from numba.core.dispatcher import Dispatcher\n"
            "kernels = [v for m in list(sys.modules.values()) "
            "if getattr(m, '__name__', '').startswith('cdl.') "
            "for v in list(vars(m).values()) if isinstance(v, Dispatcher)]\n"
            "print(len(kernels), sum(len(k.overloads) for k in kernels))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    kernels, compiled = map(int, out.split())
    assert kernels > 50 and compiled == 0


@pytest.fixture
def fresh_private_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(K, "_private_dir", None)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    return tmp_path


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership checks")
def test_private_cache_dir_is_ours_alone(fresh_private_dir):
    path = K._private_cache_dir()
    assert path == os.path.join(fresh_private_dir, f"cdl-numba-{os.getuid()}")
    assert os.stat(path).st_mode & 0o777 == 0o700
    assert K._private_cache_dir() is path  # decided once per process


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership checks")
def test_a_shared_cache_dir_is_not_trusted(fresh_private_dir):
    shared = fresh_private_dir / f"cdl-numba-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)  # others could plant machine code here
    with pytest.warns(RuntimeWarning, match="compile in every process"):
        path = K._private_cache_dir()
    assert path != str(shared) and os.path.basename(path).startswith("cdl-numba-")
    assert os.path.isdir(path)
