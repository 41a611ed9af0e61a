"""cdl: deep learning from scratch, fast.

Every layer is a small class with an explicit forward and backward (the
book's design); the loops underneath run as Cython and Numba kernels.

    from cdl import Sequential, layers as L, optim
    net = Sequential([L.Conv2D(1, 16, 3, pad=1), L.ReLU(), L.MaxPool2D(2),
                      L.Flatten(), L.Affine(16*4*4, 10)], loss=L.SoftmaxCrossEntropy())
    loss = net.loss(x, t); net.backward(); optim.Adam(lr=1e-3).update(net.params, net.grads)
"""
from cdl import cuda, gradcheck, init, layers, ops, optim
from cdl import callbacks, ensemble
from cdl.init import seed
from cdl.kernels.parallel import set_blas_policy
from cdl.model import Sequential, load
from cdl.train import Callback, Trainer

__version__ = "0.1.0"

# Subpackages reached as attributes of cdl, imported on first use (DESIGN.md).
_LAZY = ("data", "models", "binary", "backend", "kernels", "packed", "benchmarks", "viz",
         "tune", "pretrain", "checkpoint", "precision", "distributed")

__all__ = ["Sequential", "load", "Trainer", "Callback", "seed", "set_blas_policy", "layers",
           "optim", "ops", "init", "cuda", "gradcheck", "callbacks", "ensemble", "export_onnx",
           *_LAZY, "__version__"]


def __getattr__(name):
    # Lazy: cdl.export_onnx loads cdl.onnx on first use; the onnx package only when it runs.
    if name == "export_onnx":
        from cdl.onnx import export_onnx
        return export_onnx
    if name in _LAZY:
        import importlib
        return importlib.import_module(f"cdl.{name}")
    raise AttributeError(f"module 'cdl' has no attribute {name!r}")
