"""numba.cuda twins of ``cdl.kernels``, module for module and name for name.

``cdl.backend.kernels_for(x)`` returns this package for GPU arrays; every
kernel here has the signature and the contract of its CPU twin (see
``cdl.kernels``). Nothing touches the CUDA driver until a kernel runs or
``is_available()`` is asked: the twin modules load on first use, so
``import cdl`` stays cheap on machines without a GPU.

With ``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is imported) numba.cuda
runs the same kernels on the CPU in its simulator: the tests use it to check
every twin against its CPU kernel on machines without a GPU.
"""
import importlib

import numpy as np

# Mirrors cdl.kernels.KERNEL_MODULES: a twin module per kernel module.
KERNEL_MODULES = ("memory", "activation", "dense", "conv", "pool", "norm", "optim", "dropout",
                  "binarize", "binary", "elementwise", "loss", "im2col", "augment", "precision")
_loaded = {}


def is_available():
    """True when numba.cuda finds a usable GPU (or the CUDA simulator is on)."""
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install must read as "no GPU", not crash
        return False


def _require():
    if not is_available():
        raise RuntimeError("cdl.cuda: no CUDA GPU is available (numba.cuda.is_available() "
                           "is False); install a CUDA driver, or run on the CPU")
    from numba import cuda
    return cuda


def to_device(x):
    """A copy of host array x on the GPU (C-contiguous); a device array is returned as is."""
    from cdl.backend import is_device_array
    if is_device_array(x):
        return x
    return _require().to_device(np.ascontiguousarray(x))


def to_host(x):
    """A NumPy copy of device array x; a NumPy array is returned as is."""
    from cdl.backend import is_device_array
    if not is_device_array(x):
        return x
    return x.copy_to_host()


def _twin_module(name):
    module = _loaded.get(name)
    if module is None:
        module = _loaded[name] = importlib.import_module(f"cdl.cuda.{name}")
    return module


def __getattr__(name):
    # PEP 562: a kernel name resolves to its twin, loading twin modules on first use.
    for module_name in KERNEL_MODULES:
        try:
            module = _twin_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != f"cdl.cuda.{module_name}":
                raise
            continue
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module 'cdl.cuda' has no attribute {name!r}")


def kernel_names():
    """Every kernel name the twin modules define (imports them: needs numba.cuda)."""
    names = []
    for module_name in KERNEL_MODULES:
        try:
            names += list(_twin_module(module_name).__all__)
        except ModuleNotFoundError as e:
            if e.name != f"cdl.cuda.{module_name}":
                raise
    return names


__all__ = ["is_available", "to_device", "to_host", "kernel_names", "KERNEL_MODULES"]
