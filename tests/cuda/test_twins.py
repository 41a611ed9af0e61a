"""Every CPU kernel has a CUDA twin with the same name and arguments (STYLE.md section 3)."""
import inspect

import cdl.cuda
import cdl.kernels

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
