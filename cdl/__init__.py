"""cdl: deep learning from scratch, fast.

Every layer is a small class with an explicit forward and backward (the
book's design); the loops underneath run as Cython and Numba kernels.

    from cdl import Sequential, layers as L, optim
    net = Sequential([L.Conv2D(1, 16, 3, pad=1), L.ReLU(), L.MaxPool2D(2),
                      L.Flatten(), L.Affine(16*4*4, 10)], loss=L.SoftmaxCrossEntropy())
    loss = net.loss(x, t); net.backward(); optim.Adam(lr=1e-3).update(net.params, net.grads)
"""
import os

# OpenMP threads (Numba's prange, the Cython extension) spin while idle by default and
# fight OpenBLAS's spinning threads when BLAS calls and kernels alternate, as they do in
# every training step: 6x slower steps measured on 2 cores. Sleeping instead costs a few
# microseconds per parallel region. Must be set before libgomp loads; a user's own
# setting wins. The rest of the threading policy: cdl/kernels/parallel.py.
_omp_policy_from_cdl = "OMP_WAIT_POLICY" not in os.environ  # read by cdl.benchmarks
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cdl import cuda, gradcheck, init, layers, ops, optim  # noqa: E402
from cdl import callbacks, ensemble  # noqa: E402
from cdl.init import seed  # noqa: E402
from cdl.model import Sequential, load  # noqa: E402
from cdl.train import Callback, Trainer  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Sequential", "load", "Trainer", "Callback", "seed", "layers", "optim", "ops",
           "init", "cuda", "gradcheck", "callbacks", "ensemble", "__version__"]
