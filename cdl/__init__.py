"""cdl: deep learning from scratch, fast.

Every layer is a small class with an explicit forward and backward (the
book's design); the loops underneath run as Cython and Numba kernels.

    from cdl import Sequential, layers as L, optim
    net = Sequential([L.Conv2D(1, 16, 3, pad=1), L.ReLU(), L.MaxPool2D(2),
                      L.Flatten(), L.Affine(16*4*4, 10)], loss=L.SoftmaxCrossEntropy())
    loss = net.loss(x, t); net.backward(); optim.Adam(lr=1e-3).update(net.params, net.grads)

``import cdl`` itself imports nothing (not even NumPy): every name below and
every subpackage (``cdl.data``, ``cdl.models``, ``cdl.kernels`` ...) loads on
first access (PEP 562), so a script or CLI that needs one part pays for that
part only, and Numba is imported by the first layer or kernel that runs.
"""
__version__ = "0.1.0"

# Top-level names -> the module that defines them, imported on first access.
_NAMES = {"Sequential": "cdl.model", "load": "cdl.model", "Trainer": "cdl.train",
          "Callback": "cdl.callbacks", "seed": "cdl.init",
          "set_blas_policy": "cdl.kernels.parallel", "export_onnx": "cdl.onnx"}

# Subpackages and modules named by DESIGN.md or star-exported; any other submodule
# (cdl.model, cdl.train ...) is reachable as an attribute too.
_SUBMODULES = ("layers", "optim", "ops", "init", "cuda", "gradcheck", "callbacks", "ensemble",
               "data", "models", "bitops", "binary", "backend", "kernels", "packed",
               "benchmarks", "viz", "tune", "pretrain", "checkpoint", "precision", "distributed")

__all__ = [*_NAMES, *_SUBMODULES, "__version__"]


def __getattr__(name):
    import importlib
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value
    if not name.startswith("__"):
        try:
            # Importing a submodule binds it as an attribute of cdl as well.
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise  # the submodule exists but one of its imports is missing: say which
    raise AttributeError(f"module 'cdl' has no attribute {name!r}")


def __dir__():
    import pkgutil
    submodules = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted({*globals(), *__all__, *submodules})
