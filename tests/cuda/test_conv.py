"""CUDA convolution twins (and their im2col_t / col2im_t) against the CPU kernels; Conv2D on
the GPU against the CPU. Tiny shapes: the simulator runs every thread in Python."""
import numpy as np
import pytest

from cdl import layers as L
from cdl.backend import kernels_for
from cdl.kernels import im2col as cpu_cols

from ..conftest import host, on
from .test_dense import check_layer_on_device, compile_for_gpu, tol

CASES = [  # x shape, W shape, stride, pad
    ((2, 2, 5, 5), (2, 2, 3, 3), (1, 1), (1, 1)),   # same padding
    ((2, 2, 5, 5), (3, 2, 3, 3), (2, 2), (1, 1)),   # stride 2
    ((2, 3, 3, 3), (2, 3, 1, 1), (1, 1), (0, 0)),   # 1x1 kernel
    ((1, 2, 5, 4), (2, 2, 2, 3), (2, 1), (1, 0)),   # odd, rectangular
    ((1, 1, 5, 5), (2, 1, 2, 2), (3, 3), (0, 0)),   # stride > kernel: pixels no window reads
]


def _out_shape(xs, ws, stride, pad):
    return (xs[0], ws[0], (xs[2] + 2 * pad[0] - ws[2]) // stride[0] + 1,
            (xs[3] + 2 * pad[1] - ws[3]) // stride[1] + 1)


def _inputs(case, dtype, seed=0):
    xs, ws, stride, pad = case
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
            rng.standard_normal(ws[0]).astype(dtype),
            rng.standard_normal(_out_shape(*case)).astype(dtype))


def _both(case, x, W, b, d, with_dx=True):
    """(CPU, GPU) results of forward and backward: y, dx, dW, db."""
    stride, pad = case[2:]
    results = []
    for dev in ("cpu", "cuda"):
        xk, Wk, bk, dk = on(dev, x, W, b, d)
        K = kernels_for(xk)
        y = K.conv2d_forward(xk, Wk, bk, stride, pad, K.empty(d.shape, x.dtype))
        grads = K.conv2d_backward(dk, xk, Wk, stride, pad,
                                  K.empty(x.shape, x.dtype) if with_dx else None,
                                  K.empty(W.shape, x.dtype),
                                  K.empty(b.shape, x.dtype) if b is not None else None)
        results.append([host(a) if a is not None else None for a in (y, *grads)])
    return results


# Every case in float64, two in float32 too (each simulated case takes a few seconds).
@pytest.mark.slow
@pytest.mark.parametrize("case,dtype", [(c, np.float64) for c in CASES]
                         + [(CASES[0], np.float32), (CASES[3], np.float32)])
def test_conv_matches_cpu(case, dtype):
    cpu, gpu = _both(case, *_inputs(case, dtype))
    for name, want, got in zip(("y", "dx", "dW", "db"), cpu, gpu):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol(dtype), err_msg=name)


@pytest.mark.slow  # seconds in the CUDA simulator
def test_conv_without_bias_and_dx():
    case = CASES[1]
    x, W, _, d = _inputs(case, np.float64, seed=1)
    cpu, gpu = _both(case, x, W, None, d, with_dx=False)
    assert gpu[1] is None and gpu[3] is None
    for want, got in ((cpu[0], gpu[0]), (cpu[2], gpu[2])):
        np.testing.assert_allclose(got, want, **tol(np.float64))


@pytest.mark.slow
def test_conv_in_chunks_of_one_sample(monkeypatch):
    """Chunks of the batch: y chunk by chunk, dW accumulated across chunks (beta = 1)."""
    from cdl.cuda import conv as gpu_conv
    monkeypatch.setattr(gpu_conv, "_CHUNK_BYTES", 1)
    case = ((3, 1, 4, 4), (2, 1, 3, 3), (1, 1), (1, 1))
    cpu, gpu = _both(case, *_inputs(case, np.float64, seed=2))
    for want, got in zip(cpu, gpu):
        np.testing.assert_allclose(got, want, **tol(np.float64))


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[4]])
def test_im2col_t_and_col2im_t_match_cpu(case):
    """The gathers on a slice of the batch [1, 2) against the CPU's (col2im_t overwrites)."""
    from cdl.cuda import im2col as gpu_cols
    xs, ws, stride, pad = case
    xs = (2, *xs[1:])
    x = np.random.default_rng(3).standard_normal(xs)
    oh, ow = _out_shape(xs, ws, stride, pad)[2:]
    g = (*ws[2:], *stride, *pad, oh, ow)
    col = cpu_cols.im2col_t(x, np.empty((xs[1] * ws[2] * ws[3], oh * ow)), 1, 2, *g)
    colg = gpu_cols.im2col_t(on("cuda", x), on("cuda", np.full(col.shape, np.nan)), 1, 2, *g)
    np.testing.assert_array_equal(host(colg), col)
    dx = cpu_cols.col2im_t(col, np.full(xs, 7.0), 1, 2, *g)
    dxg = gpu_cols.col2im_t(on("cuda", col), on("cuda", np.full(xs, 7.0)), 1, 2, *g)
    np.testing.assert_allclose(host(dxg), dx, rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # seconds in the CUDA simulator
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_layer_on_device(device, dtype):
    x = np.random.default_rng(4).standard_normal((2, 2, 4, 4)).astype(dtype)
    check_layer_on_device(lambda: L.Conv2D(2, 2, 3, stride=2, pad=1, rng=5), x, device)


def test_conv2d_layer_backward_params_on_device(device):
    """backward_params: the grads alone (the kernels get dx None)."""
    x = np.random.default_rng(6).standard_normal((1, 1, 4, 4)).astype(np.float32)
    ref, layer = L.Conv2D(1, 2, 3, rng=8), L.Conv2D(1, 2, 3, rng=8)
    if device == "cuda":
        import cdl
        for k, v in layer.params.items():
            layer.params[k] = cdl.cuda.to_device(v)
    d = np.ones((1, 2, 2, 2), np.float32)
    ref.forward(x), layer.forward(on(device, x))
    ref.backward_params(d), layer.backward_params(on(device, d))
    for k in ("W", "b"):
        np.testing.assert_allclose(host(layer.grads[k]), ref.grads[k], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_kernels_compile_for_a_gpu():
    compile_for_gpu("""
        from cdl.cuda import conv, im2col
        for dt in (T.float32, T.float64):
            a1, a2, a3, a4 = (arr(dt, n) for n in (1, 2, 3, 4))
            check(im2col._im2col_t_k, a4, a2, *[i64] * 9)
            check(im2col._col2im_t_k, a2, a4, *[i64] * 10)
            check(conv._cols_to_nchw_k, a2, a1, b1, i64, a3)
            check(conv._nchw_to_cols_k, a3, i64, a2)
            check(conv._bias_grad_k, a3, a1)
    """)
