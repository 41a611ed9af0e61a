"""Numba CPU kernels: pure functions on arrays, found by name via cdl.backend.

Submodules hold one op family each; ``reference.py`` has slow, obvious NumPy
versions that the tests use as oracles. im2col/col2im are reached through
``cdl.kernels.im2col`` (the wrapper around the Cython extension).
"""
from cdl.kernels.activation import relu_backward, relu_forward
from cdl.kernels.conv import conv2d_backward, conv2d_forward
from cdl.kernels.dense import affine_backward, affine_forward
from cdl.kernels.pool import (avgpool2d_backward, avgpool2d_forward, maxpool2d_backward,
                              maxpool2d_forward)
from cdl.kernels.norm import batchnorm_apply, batchnorm_backward, batchnorm_forward
from cdl.kernels.optim import (adadelta_update, adagrad_update, adam_update, ema_update,
                               momentum_update, nesterov_update, rmsprop_update, sgd_update,
                               weight_decay_grad)
