"""cdl.cuda as a package: every CPU kernel has a CUDA twin with the same name and arguments
(STYLE.md section 3), twins load lazily by name, and the host/device copies."""
import inspect

import numpy as np
import pytest
from numba import cuda

import cdl.cuda
import cdl.kernels
from cdl.backend import is_device_array

# CPU-only names that need no twin, each with the reason. (Keep this list short.)
CPU_ONLY = {}


def test_kernel_modules_mirror_each_other():
    assert cdl.cuda.KERNEL_MODULES == cdl.kernels.KERNEL_MODULES


def test_every_kernel_has_a_cuda_twin():
    twins = set(cdl.cuda.kernel_names())
    missing = [name for name in cdl.kernels.__all__ if name not in twins and name not in CPU_ONLY]
    assert not missing, f"no CUDA twin for: {', '.join(missing)}"


def test_twins_take_the_same_arguments():
    for name in cdl.cuda.kernel_names():
        cpu, gpu = getattr(cdl.kernels, name), getattr(cdl.cuda, name)
        assert list(inspect.signature(gpu).parameters) == list(inspect.signature(cpu).parameters), name


def test_to_device_and_back():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # not contiguous
    d = cdl.cuda.to_device(x)
    assert is_device_array(d) and d.shape == (3, 2)
    assert cdl.cuda.to_device(d) is d  # already there: as is
    back = cdl.cuda.to_host(d)
    assert type(back) is np.ndarray
    np.testing.assert_array_equal(back, x)
    assert cdl.cuda.to_host(x) is x  # a host array: as is


def test_is_available_reads_numba(monkeypatch):
    assert cdl.cuda.is_available() is bool(cuda.is_available())

    def broken():
        raise OSError("libcuda.so: cannot open shared object file")
    monkeypatch.setattr(cuda, "is_available", broken)
    assert cdl.cuda.is_available() is False  # a broken driver reads as "no GPU"
    with pytest.raises(RuntimeError, match="cdl.cuda: no CUDA GPU is available"):
        cdl.cuda.to_device(np.zeros(2))


def test_kernel_names_resolve_to_their_twin_module():
    assert cdl.cuda.relu_forward is cdl.cuda.activation.relu_forward
    assert cdl.cuda.empty is cdl.cuda.memory.empty
    with pytest.raises(AttributeError, match="has no attribute 'no_such_kernel'"):
        cdl.cuda.no_such_kernel
    names = cdl.cuda.kernel_names()
    assert len(names) == len(set(names)), "two twin modules define the same name"

