"""cdl.kernels.im2col: the door to the extension cdl._im2col and its Numba fallback.

The fallback runs when the extension is missing or fails to load; these tests
take it away (in this process by hiding the module, in a fresh one with an
import hook) and compare both paths to the NumPy reference, sliced over
threads or not. The extension itself links no OpenMP runtime.
"""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import cdl
from cdl import ops
from cdl.kernels import im2col as K
from cdl.kernels import parallel
from cdl.kernels import reference as ref

CASES = [  # (N, C, H, W), (kh, kw), (sh, sw), (ph, pw)
    ((5, 2, 7, 6), (3, 3), (1, 1), (1, 1)),
    ((4, 3, 9, 7), (3, 2), (2, 2), (1, 0)),
    ((7, 1, 5, 5), (1, 1), (1, 1), (0, 0)),
    ((3, 2, 3, 3), (5, 5), (1, 1), (1, 1)),
]


def _three_slices(fn, n, threads=None, work=None):
    """run_slices cutting every batch into 3 slices, however small (and however many cores)."""
    return parallel.run_slices(fn, n, threads=3)


def _check_both_ops(case, dtype):
    shape, (kh, kw), stride, pad = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    col = ops.im2col(x, kh, kw, stride, pad)
    np.testing.assert_array_equal(col, ref.im2col(x, kh, kw, *stride, *pad))
    c = rng.standard_normal(col.shape)
    got = ops.col2im(c.astype(dtype), shape, kh, kw, stride, pad)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref.col2im(c, shape, kh, kw, *stride, *pad), rtol=tol, atol=tol)


@pytest.fixture
def without_extension(monkeypatch):
    """cdl._im2col unimportable in this process (sys.modules None: ImportError), state fresh."""
    monkeypatch.delattr(cdl, "_im2col", raising=False)
    monkeypatch.setitem(sys.modules, "cdl._im2col", None)
    monkeypatch.setattr(K, "_im2col", None)
    monkeypatch.setattr(K, "_loaded", False)
    monkeypatch.setattr(K, "_warned", False)


@pytest.mark.parametrize("sliced", [False, True], ids=["one-thread", "3-slices"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_compiled_path_matches_reference(case, dtype, sliced, monkeypatch):
    assert K._compiled() is not None, "cdl._im2col missing: pip install . builds it"
    if sliced:
        monkeypatch.setattr(K, "run_slices", _three_slices)
    _check_both_ops(case, dtype)


@pytest.mark.parametrize("sliced", [False, True], ids=["one-thread", "3-slices"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_fallback_matches_reference(case, dtype, sliced, without_extension, monkeypatch):
    if sliced:
        monkeypatch.setattr(K, "run_slices", _three_slices)
    with pytest.warns(RuntimeWarning, match="cdl._im2col could not be loaded"):
        _check_both_ops(case, dtype)
    assert K._im2col is None


def test_fallback_warns_once_with_the_reason(without_extension):
    x = np.ones((2, 1, 4, 4), np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            ops.col2im(ops.im2col(x, 2, 2), x.shape, 2, 2)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1, msgs
    assert "import of cdl._im2col halted" in msgs[0] and "pip install ." in msgs[0]


# A fresh process: the hook makes the extension missing (no module found) or broken (found,
# but loading fails as a .so built for another Python does); imports nothing before cdl.
_FRESH = textwrap.dedent("""
    import importlib.abc, importlib.machinery, sys, warnings

    class Hook(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            if name != "cdl._im2col":
                return None
            if MODE == "missing":  # as if no finder had found it
                raise ModuleNotFoundError("No module named 'cdl._im2col'", name=name)
            return importlib.machinery.ModuleSpec(name, self)
        def create_module(self, spec):
            raise ImportError("_im2col.so: undefined symbol: PyFake_Symbol")
        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Hook())
    import numpy as np
    import cdl
    from cdl import layers as L, ops
    from cdl.kernels import conv, reference as ref

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((40, 3, 8, 8)).astype(np.float32)  # big enough to slice
        col = ops.im2col(x, 3, 3, 1, 1)
        assert np.array_equal(col, ref.im2col(x, 3, 3, 1, 1, 1, 1))
        c = rng.standard_normal(col.shape)
        assert np.allclose(ops.col2im(c, x.shape, 3, 3, 1, 1),
                           ref.col2im(c, x.shape, 3, 3, 1, 1, 1, 1))
        layer = L.Conv2D(3, 4, 3, pad=1)
        layer.params["b"][...] = rng.standard_normal(4)
        with conv.forced_algorithm("gemm"):  # the convolution's im2col_t / col2im_t
            y = layer.forward(x)
            dout = rng.standard_normal(y.shape).astype(np.float32)
            dx = layer.backward(dout)
        W, b = layer.params["W"], layer.params["b"]
        close = dict(rtol=1e-4, atol=1e-4)
        assert np.allclose(y, ref.conv2d_forward(x, W, b, 1, 1, 1, 1), **close)
        want = ref.conv2d_backward(dout, x, W, 1, 1, 1, 1)
        for got, w in zip((dx, layer.grads["W"], layer.grads["b"]), want):
            assert np.allclose(got, w, **close)
    assert "cdl._im2col" not in sys.modules or sys.modules["cdl._im2col"] is None
    warned = [str(w.message) for w in caught if "cdl._im2col" in str(w.message)]
    print(len(warned))
    print(warned[0] if warned else "")
""")


@pytest.mark.slow
@pytest.mark.parametrize("mode, reason", [
    ("missing", "cannot import name '_im2col' from 'cdl'"),  # what `from cdl import` says
    ("broken", "undefined symbol: PyFake_Symbol"),
])
def test_fresh_process_without_extension_warns_once_and_computes(mode, reason):
    proc = subprocess.run([sys.executable, "-c", f"MODE = {mode!r}\n" + _FRESH],
                          capture_output=True, text=True, timeout=300, cwd=os.path.dirname(__file__))
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, message = proc.stdout.strip().splitlines()[-2:]
    assert count == "1", proc.stdout
    assert reason in message and "Numba im2col" in message


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/self/maps (Linux)")
def test_extension_loads_no_openmp_runtime(tmp_path):
    """csrc is serial (cdl's workers slice the batch), so a wheel bundles no libgomp beside
    Numba's OpenMP: loading the extension maps no new shared library but itself."""
    code = textwrap.dedent("""
        import re
        def libs():
            with open("/proc/self/maps") as f:
                return {m.group(0) for m in re.finditer(r"/\\S+\\.so[.\\d]*", f.read())}
        import cdl, numpy, numba
        before = libs()
        import cdl._im2col as ext
        new = libs() - before
        print(sorted(new))
        assert new == {ext.__file__}, new
    """)
    # cwd outside the source tree: from a checkout's root, "import cdl" would find the
    # unbuilt source package before the installed one
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert not any(k in proc.stdout for k in ("gomp", "libomp", "iomp")), proc.stdout
