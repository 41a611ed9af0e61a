"""Optimizers: ``opt.update(params, grads)`` in place, as in the book."""
from cdl.optim.base import Optimizer
from cdl.optim.first_order import SGD, Adam

__all__ = ["Optimizer", "SGD", "Adam"]
