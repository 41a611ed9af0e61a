"""CUDA dense twins against the CPU kernels, and Affine on the GPU against the CPU.

Also the helpers the conv and pool twin tests share: check_layer_on_device, and
compile_for_gpu, which compiles kernels to PTX for a real GPU (the simulator runs a
kernel as Python and never types it, so code that Numba cannot compile passes there).
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cdl
from cdl import kernels as CPU
from cdl import layers as L
from cdl.backend import is_device_array, kernels_for

from ..conftest import host, on


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


_PTX_PRELUDE = """
import sys
from numba import cuda, types as T
from numba.cuda.cudadrv import nvvm
try:
    nvvm.NVVM()
except Exception:
    sys.exit(3)
import numba.cuda.dispatcher as _dispatcher


class _Device:  # device functions ask for the current device's CC; PTX needs no GPU
    compute_capability = (8, 0)


_dispatcher.get_current_device = lambda: _Device()
i64, b1 = T.int64, T.boolean
failed = []


def _probe(a):
    pass


try:  # the toolchain itself (numba-cuda also needs NVRTC): missing means skip, not fail
    cuda.compile_ptx(_probe, T.void(T.float32[:]), cc=(8, 0))
except Exception as e:
    if "NotFound" in type(e).__name__ or "not found" in str(e).lower():
        sys.exit(3)
    raise


def arr(dtype, ndim):
    return T.Array(dtype, ndim, "C")


def check(kernel, *args):
    try:
        cuda.compile_ptx(kernel.py_func, T.void(*args), cc=(8, 0))
    except Exception as e:
        failed.append(f"{kernel.py_func.__name__}{args}: {type(e).__name__}: {e}")
"""


def compile_for_gpu(jobs):
    """Run jobs (Python source calling check(kernel, *numba_types)) in a fresh process
    without the simulator: every kernel must compile to PTX (sm_80). Skipped without
    libNVVM."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = _PTX_PRELUDE + textwrap.dedent(jobs) + \
        "\nif failed:\n    print('\\n'.join(failed))\n    sys.exit(1)\n"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600)
    if r.returncode == 3:
        pytest.skip("no CUDA compiler libraries (libNVVM, NVRTC) here: kernels not compiled")
    assert r.returncode == 0, r.stdout + r.stderr


def check_layer_on_device(make, x, device, seed=0):
    """Two layers from make() (equal parameters): the one on ``device`` gives the CPU one's
    forward, input gradient and parameter gradients, in the input's dtype, and keeps its
    outputs and grads on its device."""
    ref, layer = make(), make()
    if device == "cuda":
        for k, v in layer.params.items():
            layer.params[k] = cdl.cuda.to_device(v)
    t = tol(x.dtype)
    y, yd = ref.forward(x), layer.forward(on(device, x))
    assert is_device_array(yd) == (device == "cuda") and yd.dtype == y.dtype
    np.testing.assert_allclose(host(yd), y, **t)
    dout = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    dx, dxd = ref.backward(dout), layer.backward(on(device, dout))
    assert is_device_array(dxd) == (device == "cuda") and dxd.shape == x.shape
    np.testing.assert_allclose(host(dxd), dx, **t)
    assert set(layer.grads) == set(ref.grads)
    for k, g in ref.grads.items():
        assert type(layer.grads[k]) is type(layer.params[k]), k  # grads on the params' device
        np.testing.assert_allclose(host(layer.grads[k]), g, **t, err_msg=k)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_dx", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_kernels_match_cpu(bias, with_dx, dtype):
    rng = np.random.default_rng(0)
    N, D, O = 3, 5, 4
    x, W = rng.standard_normal((N, D)).astype(dtype), rng.standard_normal((D, O)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    d = rng.standard_normal((N, O)).astype(dtype)
    y = CPU.affine_forward(x, W, b, np.empty((N, O), dtype))
    dx, dW, db = CPU.affine_backward(d, x, W, np.empty((N, D), dtype) if with_dx else None,
                                     np.empty((D, O), dtype), np.empty(O, dtype) if bias else None)
    xg, Wg, bg, dg = on("cuda", x, W, b, d)
    K = kernels_for(xg)
    yg = K.affine_forward(xg, Wg, bg, K.empty((N, O), dtype))
    dxg, dWg, dbg = K.affine_backward(dg, xg, Wg, K.empty((N, D), dtype) if with_dx else None,
                                      K.empty((D, O), dtype), K.empty(O, dtype) if bias else None)
    t = tol(dtype)
    np.testing.assert_allclose(host(yg), y, **t)
    np.testing.assert_allclose(host(dWg), dW, **t)
    assert (dxg is None) == (not with_dx) and (dbg is None) == (not bias)
    if with_dx:
        np.testing.assert_allclose(host(dxg), dx, **t)
    if bias:
        np.testing.assert_allclose(host(dbg), db, **t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_layer_on_device(device, dtype):
    """4-D input flattened per sample, as after a conv; float64 input to float32 weights too."""
    x = np.random.default_rng(1).standard_normal((2, 2, 2, 3)).astype(dtype)
    check_layer_on_device(lambda: L.Affine(12, 5, rng=7), x, device)


def test_affine_layer_without_bias_backward_params(device):
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    ref, layer = L.Affine(4, 2, bias=False, rng=3), L.Affine(4, 2, bias=False, rng=3)
    if device == "cuda":
        layer.params["W"] = cdl.cuda.to_device(layer.params["W"])
    d = np.ones((3, 2), np.float32)
    ref.forward(x), layer.forward(on(device, x))
    ref.backward_params(d), layer.backward_params(on(device, d))
    assert list(layer.grads) == ["W"]
    np.testing.assert_allclose(host(layer.grads["W"]), ref.grads["W"], rtol=1e-6)


@pytest.mark.slow
def test_kernels_compile_for_a_gpu():
    compile_for_gpu("""
        from cdl.cuda import dense
        for dt in (T.float32, T.float64):
            check(dense._add_bias_k, arr(dt, 1), arr(dt, 1))
            check(dense._column_sums_k, arr(dt, 2), arr(dt, 1))
    """)
