"""The one place that decides where a computation runs: CPU or CUDA.

The decision comes from the data, never from a global mode: NumPy arrays go
to ``cdl.kernels`` (Numba and Cython), numba.cuda device arrays go to
``cdl.cuda``, whose kernels mirror the CPU ones name for name. A kernel with
no CUDA twin is a clear error, never a silent copy back to the host.
"""
import importlib

import numpy as np

from cdl._checks import is_device_array


class _Twins:
    """Attribute access on a kernel module that names the missing kernel."""

    def __init__(self, module_name, device):
        self._module_name = module_name
        self._device = device

    def __getattr__(self, name):
        # Only reached on the first lookup of a name: found kernels are cached on the
        # instance, so layers pay a plain attribute access afterwards.
        module = importlib.import_module(self._module_name)
        try:
            kernel = getattr(module, name)
        except AttributeError:
            raise RuntimeError(f"no {self._device} kernel for {name}") from None
        setattr(self, name, kernel)
        return kernel


_CPU = _Twins("cdl.kernels", "CPU")
_CUDA = _Twins("cdl.cuda", "CUDA")


def kernels_for(*arrays):
    """The kernel namespace for these arrays: all on the host or all on the GPU."""
    if all(type(a) is np.ndarray or a is None for a in arrays):
        return _CPU
    on_device = [is_device_array(a) for a in arrays if a is not None]
    if any(on_device) and not all(on_device):
        raise ValueError("arrays are split between the CPU and the GPU; move them together")
    return _CUDA if on_device and on_device[0] else _CPU


__all__ = ["kernels_for", "is_device_array"]
