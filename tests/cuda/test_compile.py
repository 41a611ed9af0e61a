"""Every CUDA kernel compiles for a real GPU, not only under the simulator.

The simulator runs a kernel as Python and never types it, so code that Numba cannot
compile for CUDA (e.g. builtin two-argument min/max, numba/numba#10753) passes there.
test_compile_for_a_gpu compiles the kernels of the twin modules that have no compile test
of their own to PTX (sm_80) without the simulator, with the argument types their wrappers
pass; test_dense, test_conv, test_pool and test_gemm do the same for theirs. The meta-test
fails when a ``@cuda.jit`` kernel in cdl/cuda is in none of these lists.
"""
import ast
import pathlib
import re

import pytest

from .test_dense import compile_for_gpu

CUDA_DIR = pathlib.Path(__file__).resolve().parents[2] / "cdl" / "cuda"
TESTS_DIR = pathlib.Path(__file__).resolve().parent

# Kernels a factory builds (one per dtype): the compile tests reach them through the factory.
FACTORY_KERNELS = {("gemm", "_gemm_k"): "gemm._gemm_k_for("}

JOBS = """
import numpy as np
from numba import from_dtype
from cdl.cuda import (_random, _reduce, activation, binarize, binary, dropout, elementwise, loss,
                      memory, norm, optim)

f32, f64, i32, i64, u8, u64 = T.float32, T.float64, T.int32, T.int64, T.uint8, T.uint64
FLOATS = (f32, f64)
MIXED = [(a, b, f64 if f64 in (a, b) else f32) for a in FLOATS for b in FLOATS]  # a, b, result
states = arr(from_dtype(_random.xoroshiro128p_dtype), 1)

# memory: fill and copy any dtype the layers allocate; copy casts (labels, targets, BN stats)
for dt in (f32, f64, i32, i64, u64, u8, b1):
    check(memory._fill_k, arr(dt, 1), dt)
    check(memory._copy_k, arr(dt, 1), arr(dt, 1))
for src in (f32, f64, i32, i64, u8, b1):
    for dst in FLOATS:
        check(memory._copy_k, arr(src, 1), arr(dst, 1))

for dt in FLOATS:
    a, m = arr(dt, 1), arr(dt, 2)
    check(activation._relu_forward_k, a, a)
    check(activation._relu_backward_k, a, a, a)
    check(activation._leaky_relu_forward_k, a, dt, a)
    check(activation._leaky_relu_backward_k, a, a, dt, a)
    check(activation._sigmoid_forward_k, a, dt, dt, a)
    check(activation._sigmoid_backward_k, a, a, dt, a)
    check(activation._tanh_forward_k, a, a)
    check(activation._tanh_backward_k, a, a, dt, a)
    check(activation._step_forward_k, a, a)
    check(activation._softmax_forward_k, m, m)
    check(activation._softmax_backward_k, m, m, m)

for a, b, o in MIXED:  # Residual adds and Concat joins mixed dtypes into the wider one
    check(elementwise._add_k, arr(a, 1), arr(b, 1), arr(o, 1))
    check(elementwise._copy_channels_k, arr(a, 1), i64, i64, i64, arr(o, 1))
    check(elementwise._slice_channels_k, arr(o, 1), i64, i64, i64, arr(a, 1))
for dt in FLOATS:
    check(elementwise._scale_k, arr(dt, 1), dt, arr(dt, 1))

d1 = arr(f64, 1)
for dt in FLOATS:
    check(_reduce._total_k, arr(dt, 1), i64, d1)
for dt in FLOATS:
    a, m = arr(dt, 1), arr(dt, 2)
    for lt in (i64, i32, u8):  # labels: any integer dtype
        check(loss._sce_labels_forward_k, m, arr(lt, 1), m, d1)
        check(loss._sce_labels_backward_k, m, arr(lt, 1), dt, dt, m)
    check(loss._sce_targets_forward_k, m, m, m, d1)
    check(loss._difference_k, a, a, dt, a)
    check(loss._bce_forward_k, a, a, a, d1)
    check(loss._squares_k, a, a, d1)

for dt in FLOATS:  # statistics and their gradients in float64, the rest in the layer's dtype
    a, m, x = arr(dt, 1), arr(dt, 2), arr(dt, 3)
    check(norm._batchnorm_forward_k, x, a, a, f64, x, d1, d1, m)
    check(norm._apply_coef_k, d1, d1, a, m)
    check(norm._batchnorm_apply_k, a, a, a, m, i64, i64)
    check(norm._batchnorm_backward_k, x, x, d1, d1, a, b1, x, d1, d1, m)
    check(norm._inv_std_k, a, f64, d1)
    check(norm._running_update_k, d1, d1, dt, dt, f64, f64, a, a)
check(norm._inv_std_k, d1, f64, d1)

for dt in FLOATS:
    a = arr(dt, 1)
    check(optim._sgd_k, a, a, dt)
    check(optim._momentum_k, a, a, a, dt, dt)
    check(optim._nesterov_k, a, a, a, dt, dt)
    check(optim._adagrad_k, a, a, a, dt, dt)
    check(optim._adadelta_k, a, a, a, a, dt, dt, dt, dt)
    check(optim._rmsprop_k, a, a, a, dt, dt, dt, dt)
    check(optim._adam_k, a, a, a, a, *[dt] * 7)
    check(optim._decay_k, a, a, dt, dt, dt, dt)
    check(optim._ema_k, a, a, dt, dt)
    check(optim._clip_k, a, dt, dt)

check(_random._seed_k, states, u64)
check(dropout._normal32_k, states, f32, arr(f32, 1))
check(dropout._normal64_k, states, f64, arr(f64, 1))
for dt in FLOATS:
    check(dropout._dropout_mask_k, states, f32, dt, arr(dt, 1))
for a, b, o in MIXED:
    check(dropout._apply_mask_k, arr(a, 1), arr(b, 1), arr(o, 1))

for dt in FLOATS:
    a, x = arr(dt, 1), arr(dt, 3)
    check(binarize._sign_forward_k, a, a)
    check(binarize._clip_k, a, dt, dt, a)
    check(binarize._stochastic_sign_k, u64, states, a, a)
    check(binarize._channel_scale_shift_k, a, a, a, b1, b1, i64, i64, a)
    check(binarize._channel_abs_mean_backward_k, a, a, i64, i64, i64, a)
    check(binarize._channel_sum_k, x, a)
    check(binarize._channel_dot_k, x, x, a)
    check(binarize._channel_abs_mean_k, x, a)
for a, b, o in MIXED:
    check(binarize._ste_backward_k, arr(a, 1), arr(b, 1), arr(o, 1))

w1, w2, w4 = arr(u64, 1), arr(u64, 2), arr(u64, 4)
for dt in FLOATS:
    check(binary._pack_signs_k, arr(dt, 2), w2)
    check(binary._unpack_signs_k, w2, arr(dt, 2))
    check(binary._pack_channels_k, arr(dt, 4), w4)
for dt in (i32, f32, f64):  # int32 products of the packed model, or floats
    check(binary._threshold_pack_k, arr(dt, 2), arr(dt, 1), arr(b1, 1), w2)
check(binary._im2col_bits_k, w4, *[i64] * 9, w2)
check(binary._maxpool_bits_k, w4, w1, *[i64] * 6, w4)
check(binary._xnor_gemm_k, w2, w2, i64, u64, arr(i32, 2))
"""


@pytest.mark.slow
def test_compile_for_a_gpu():
    """About 200 compilations: 12 s of CPU time."""
    compile_for_gpu(JOBS)


def _kernels():
    """(module, name) of every @cuda.jit kernel (not device function) defined in cdl/cuda."""
    found = set()
    for path in CUDA_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for d in node.decorator_list:
                call = d if isinstance(d, ast.Call) else None
                f = call.func if call else d
                if not (isinstance(f, ast.Attribute) and f.attr == "jit"
                        and isinstance(f.value, ast.Name) and f.value.id == "cuda"):
                    continue
                device = call and any(k.arg == "device" and isinstance(k.value, ast.Constant)
                                      and k.value.value for k in call.keywords)
                if not device:
                    found.add((path.stem, node.name))
    return found


def _checked():
    """(module, name) of every kernel the compile tests check (as ``check(<module>.<name>,``),
    and the source of all those tests."""
    listed, sources = set(), ""
    for path in TESTS_DIR.glob("test_*.py"):
        text = path.read_text()
        if "compile_for_gpu(" not in text:
            continue
        sources += text
        listed |= set(re.findall(r"\bcheck\(\s*(\w+)\.(\w+)\s*,", text))
    return listed, sources


def test_every_kernel_is_compiled_for_a_gpu():
    kernels = _kernels()
    assert ("memory", "_fill_k") in kernels and ("pool", "_maxpool2d_forward_k") in kernels
    listed, sources = _checked()
    missing = sorted(f"{m}.{n}" for m, n in kernels - listed
                     if FACTORY_KERNELS.get((m, n), "\0") not in sources)
    assert not missing, ("kernels no compile test checks (add them to JOBS in "
                         f"tests/cuda/test_compile.py): {', '.join(missing)}")
    stale = sorted(f"{m}.{n}" for m, n in listed - kernels)
    assert not stale, f"compile tests list kernels that do not exist: {', '.join(stale)}"


@pytest.mark.parametrize("n", [0, 1, 255, 257, 10**6, 2**40])
def test_launch_geometry_within_gpu_limits(n):
    """The grid helpers give what a GPU launches: 1..2^31-1 blocks, 1..1024 threads (the
    simulator runs a grid of no blocks, or more threads than a GPU has, without a word), and
    reducing blocks no wider than their shared arrays, in powers of two."""
    from cdl.cuda import _launch, _reduce, binarize, norm
    for who, (blocks, threads) in [("grid", _launch.grid(n)),
                                   ("norm._channel_grid", norm._channel_grid(n, n)),
                                   ("binarize._per_channel", binarize._per_channel(n))]:
        assert 1 <= blocks <= 2**31 - 1 and 1 <= threads <= 1024, (who, n, blocks, threads)
    t = _reduce.block_threads(n)
    assert 32 <= t <= _reduce.MAX_THREADS and t & (t - 1) == 0
    assert binarize._RT & (binarize._RT - 1) == 0  # _block_total halves it down to 1
