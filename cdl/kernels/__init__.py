"""CPU kernels: pure functions on arrays, found by name via cdl.backend.

The kernel contract, shared with the numba.cuda twins in ``cdl.cuda`` (same
module names, same function names, same argument order):

- A kernel takes arrays and plain numbers (Python ints and floats, a NumPy
  Generator where it draws random numbers) and writes its results into
  arrays the caller supplies (the last arguments: ``y``, ``dx``, ``out``...),
  returning them (one array, or a tuple). It never allocates its outputs;
  scratch space it needs inside comes from the same backend. A result that
  is one number (a loss) is returned as a Python float: the only value a
  training step brings back from the GPU.
- Allocation goes through the same namespace: ``empty``, ``zeros``,
  ``empty_like``, ``zeros_like``, ``fill``, ``copy`` (``cdl.kernels.memory``).
- Kernels trust their inputs (layers and ops check shapes and dtypes first),
  except where a module says otherwise.
- CPU-only choices (conv algorithm, thread counts) are not arguments: they
  are made inside the CPU kernels or set through their modules' functions.

Each module lists its kernels in ``__all__``; this package exports them all,
and a test checks that ``cdl.cuda`` has a twin of each (KERNEL_MODULES).
``reference.py`` has slow, obvious NumPy versions that the tests use as
oracles; ``parallel.py`` is the CPU threading policy.
"""
import importlib

KERNEL_MODULES = ("memory", "activation", "dense", "conv", "pool", "norm", "optim", "dropout",
                  "binarize", "binary", "elementwise", "loss", "im2col", "augment", "precision")

__all__ = []
for _name in KERNEL_MODULES:
    _module = importlib.import_module(f"cdl.kernels.{_name}")
    for _kernel in _module.__all__:
        globals()[_kernel] = getattr(_module, _kernel)
        __all__.append(_kernel)
del _name, _module, _kernel
