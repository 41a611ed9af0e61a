"""Matrix products of device arrays: c = alpha * op(a) @ op(b) + beta * c.

The GEMM under the dense and convolution twins (cdl.cuda.dense, cdl.cuda.conv).
It is a helper of the CUDA side, not a kernel module: the CPU kernels call
BLAS through np.matmul, so there is no CPU twin and "gemm" is not in
KERNEL_MODULES.

Which GEMM runs (``backend()`` says):

- "cupy":   cuBLAS through CuPy's bindings (cupy_backends.cuda.libs.cublas)
            when CuPy imports;
- "nvmath": cuBLAS through nvmath-python's bindings (nvmath.bindings.cublas)
            when nvmath-python imports and CuPy does not;
- "numba":  the tiled shared-memory kernel below otherwise, and always under
            the CUDA simulator (NUMBA_ENABLE_CUDASIM=1: neither library can
            run there, so the simulator tests exercise this one), or when the
            environment sets CDL_CUDA_GEMM=numba.

cuBLAS is called with raw device pointers taken from __cuda_array_interface__
(zero-copy: no CuPy array is made), on the legacy default stream, where numba
launches its kernels too, so the order of the work is kept without a
synchronization. It takes a call whose three arrays share one dtype, float32
or float64; other calls (mixed dtypes) take the numba kernel.

cuBLAS is column-major: a row-major (R, C) array is the column-major (C, R)
matrix of its transpose, so row-major c = op(a) op(b) is computed as
column-major c^T = op(b)^T op(a)^T, that is with a and b swapped and the same
transpose flags.
"""
import os

import numba
import numpy as np
from numba import cuda

TILE = 16            # the numba kernel's tiles: TILE x TILE threads per block
_MAX_BLOCKS = 65535  # per grid dimension (grid-stride loops over tiles cover the rest)

_backend = None
_kernels = {}


def _simulated():
    return bool(numba.config.ENABLE_CUDASIM)


def _cublas():
    """(name, module with sgemm/dgemm, handle), or None when no cuBLAS binding imports (the
    handle None for CuPy: its handle of the current device is looked up at each call)."""
    try:
        import cupy
        from cupy_backends.cuda.libs import cublas
        cupy.cuda.device.get_cublas_handle()  # fails here, not at the first product, without a GPU
        return "cupy", cublas, None
    except Exception:  # not installed, or installed without a usable CUDA runtime
        pass
    try:
        from nvmath.bindings import cublas
        handle = cublas.create()
        cublas.set_stream(handle, 0)
        return "nvmath", cublas, handle
    except Exception:
        return None


def backend():
    """The GEMM in use: "cupy", "nvmath" (cuBLAS) or "numba" (see the module docstring)."""
    global _backend
    if _backend is None:
        lib = None
        if not _simulated() and os.environ.get("CDL_CUDA_GEMM", "").lower() != "numba":
            lib = _cublas()
        _backend = lib or ("numba", None, None)
    return _backend[0]


def _gemm_k_for(dtype):
    """The tiled GEMM kernel whose shared tiles and accumulator have dtype (one per dtype:
    shared arrays need their type at compile time)."""
    kernel = _kernels.get(dtype)
    if kernel is not None:
        return kernel
    T = numba.from_dtype(dtype)

    @cuda.jit
    def _gemm_k(a, b, c, trans_a, trans_b, alpha, beta):
        # sa[r, q] = op(a)[bi*TILE + r, k0 + q], sb[q, s] = op(b)[k0 + q, bj*TILE + s];
        # each thread loads one element of each tile, threadIdx.x along the contiguous axis
        # of the stored array (coalesced), and computes c[bi*TILE + ty, bj*TILE + tx].
        sa = cuda.shared.array((TILE, TILE), T)
        sb = cuda.shared.array((TILE, TILE), T)
        M, N = c.shape
        K = a.shape[0] if trans_a else a.shape[1]
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        for bi in range(cuda.blockIdx.y, (M + TILE - 1) // TILE, cuda.gridDim.y):
            for bj in range(cuda.blockIdx.x, (N + TILE - 1) // TILE, cuda.gridDim.x):
                acc = T(0)
                for k0 in range(0, K, TILE):
                    if trans_a:  # a is (K, M): row k0 + ty, column bi*TILE + tx
                        r, q = tx, ty
                        v = a[k0 + ty, bi * TILE + tx] \
                            if k0 + ty < K and bi * TILE + tx < M else T(0)
                    else:        # a is (M, K): row bi*TILE + ty, column k0 + tx
                        r, q = ty, tx
                        v = a[bi * TILE + ty, k0 + tx] \
                            if bi * TILE + ty < M and k0 + tx < K else T(0)
                    sa[r, q] = v
                    if trans_b:  # b is (N, K): row bj*TILE + ty, column k0 + tx
                        q, s = tx, ty
                        v = b[bj * TILE + ty, k0 + tx] \
                            if bj * TILE + ty < N and k0 + tx < K else T(0)
                    else:        # b is (K, N): row k0 + ty, column bj*TILE + tx
                        q, s = ty, tx
                        v = b[k0 + ty, bj * TILE + tx] \
                            if k0 + ty < K and bj * TILE + tx < N else T(0)
                    sb[q, s] = v
                    cuda.syncthreads()
                    for t in range(TILE):
                        acc += sa[ty, t] * sb[t, tx]
                    cuda.syncthreads()
                i, j = bi * TILE + ty, bj * TILE + tx
                if i < M and j < N:
                    # beta == 0 never reads c: it may hold garbage (NaN) from K.empty
                    c[i, j] = alpha * acc + beta * c[i, j] if beta != 0 else alpha * acc

    _kernels[dtype] = _gemm_k
    return _gemm_k


def _numba_gemm(a, b, c, trans_a, trans_b, alpha, beta):
    M, N = c.shape
    blocks = (min(_MAX_BLOCKS, (N + TILE - 1) // TILE), min(_MAX_BLOCKS, (M + TILE - 1) // TILE))
    T = c.dtype.type
    _gemm_k_for(c.dtype)[blocks, (TILE, TILE)](a, b, c, bool(trans_a), bool(trans_b),
                                               T(alpha), T(beta))
    return c


def _pointer(x):
    return x.__cuda_array_interface__["data"][0]


def _cublas_gemm(lib, handle, a, b, c, trans_a, trans_b, alpha, beta):
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    call = lib.sgemm if c.dtype == np.float32 else lib.dgemm
    # cuBLAS reads alpha and beta through host pointers (the default pointer mode)
    if handle is None:  # CuPy: its handle for the current device, on the legacy default
        import cupy     # stream (CuPy may have bound it to another stream of its own)
        handle = cupy.cuda.device.get_cublas_handle()
        lib.setStream(handle, 0)
    scalars = np.array([alpha, beta], dtype=c.dtype)
    op_b, op_a = int(bool(trans_b)), int(bool(trans_a))  # CUBLAS_OP_N = 0, CUBLAS_OP_T = 1
    call(handle, op_b, op_a, N, M, K,
         scalars.ctypes.data, _pointer(b), max(1, b.shape[1]),
         _pointer(a), max(1, a.shape[1]),
         scalars.ctypes.data + scalars.itemsize, _pointer(c), N)
    return c


def gemm(a, b, c, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """c (M, N) = alpha * op(a) @ op(b) + beta * c for C-contiguous 2-D device arrays; returns c.

    op(a) is a (M, K), or a.T when trans_a (a stored (K, M)); op(b) is b (K, N), or b.T
    when trans_b (b stored (N, K)). beta = 0 ignores what c holds. Shapes are trusted.
    """
    M, N = c.shape
    if M == 0 or N == 0:
        return c
    name = backend()
    if name != "numba" and a.dtype == b.dtype == c.dtype and c.dtype in (np.float32, np.float64):
        _, lib, handle = _backend
        return _cublas_gemm(lib, handle, a, b, c, trans_a, trans_b, alpha, beta)
    return _numba_gemm(a, b, c, trans_a, trans_b, alpha, beta)


__all__ = ["gemm", "backend"]
