"""cdl.backend.kernels_for: the kernel namespace comes from where the arrays live."""
import numpy as np
import pytest

import cdl
import cdl.cuda
import cdl.kernels
from cdl import backend


def test_host_arrays_and_none_get_the_cpu_kernels():
    x = np.zeros(3, np.float32)
    K = backend.kernels_for(x, None, np.ones((2, 2)))
    assert K is backend.kernels_for()  # no arrays at all: the CPU
    assert K.relu_forward is cdl.kernels.relu_forward


def test_device_arrays_get_the_cuda_kernels():
    d = cdl.cuda.to_device(np.zeros(3, np.float32))
    K = backend.kernels_for(d, None)
    assert K is not backend.kernels_for(np.zeros(3))
    assert K.relu_forward is cdl.cuda.relu_forward


def test_arrays_split_between_host_and_device_are_refused():
    d = cdl.cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="split between the CPU and the GPU"):
        backend.kernels_for(np.zeros(3, np.float32), d)


def test_a_missing_kernel_is_named():
    K = backend.kernels_for(np.zeros(1))
    with pytest.raises(RuntimeError, match="no CPU kernel for no_such_kernel"):
        K.no_such_kernel
    with pytest.raises(RuntimeError, match="no CUDA kernel for no_such_kernel"):
        backend.kernels_for(cdl.cuda.to_device(np.zeros(1))).no_such_kernel


def test_found_kernels_are_cached_on_the_namespace():
    K = backend._Twins("cdl.kernels", "CPU")
    assert "relu_forward" not in vars(K)
    first = K.relu_forward
    assert vars(K)["relu_forward"] is first is K.relu_forward


def test_array_subclasses_are_host_arrays():
    # a masked array is not exactly np.ndarray: it takes the slower check, same answer
    m = np.ma.masked_array(np.zeros(2))
    assert backend.kernels_for(m, np.zeros(1)) is backend.kernels_for(np.zeros(1))
