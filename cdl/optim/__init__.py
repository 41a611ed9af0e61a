"""Optimizers: ``opt.update(params, grads)`` in place, as in the book.

First order (one fused kernel per array and step): SGD, Momentum, Nesterov,
AdaGrad, AdaDelta, RMSProp, Adam. Full batch, on a closure over the whole
data set: Newton, ConjugateGradient, BFGS, LBFGS, CoordinateDescent. Around
them: WeightDecay (for ``Sequential(weight_decay=...)``), gradient clipping,
learning-rate schedules and parameter averaging (Trainer callbacks).
"""
from cdl.optim.averaging import EMA, PolyakAverage
from cdl.optim.base import Optimizer
from cdl.optim.clip import GradClip, clip_grad_norm, clip_grad_value, global_norm
from cdl.optim.first_order import SGD, AdaDelta, AdaGrad, Adam, Momentum, Nesterov, RMSProp
from cdl.optim.regularize import WeightDecay
from cdl.optim.schedules import CosineLR, ExponentialLR, LinearWarmup, LRSchedule, StepLR
from cdl.optim.second_order import (BFGS, LBFGS, ConjugateGradient, CoordinateDescent,
                                    FullBatchOptimizer, Newton, Result, model_closure)

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "AdaDelta", "RMSProp", "Adam",
           "FullBatchOptimizer", "Newton", "ConjugateGradient", "BFGS", "LBFGS",
           "CoordinateDescent", "Result", "model_closure",
           "WeightDecay", "GradClip", "clip_grad_norm", "clip_grad_value", "global_norm",
           "LRSchedule", "StepLR", "ExponentialLR", "CosineLR", "LinearWarmup",
           "EMA", "PolyakAverage"]
