"""Plain NumPy versions of the update kernels in ``cdl.kernels.optim``: the test oracles
and the NumPy contender of ``bench/optim.py``.

Written as a NumPy user would write the book's ``common/optimizer.py``: in
place where NumPy allows it, one temporary per binary operation otherwise.
Same argument order as the fused kernels; arrays of any shape.
"""
import numpy as np


def sgd_update(p, g, lr):
    """p -= lr * g, in place (SGD)."""
    p -= lr * g


def momentum_update(p, g, v, lr, momentum):
    """v = momentum * v - lr * g; p += v, in place (Momentum)."""
    v *= momentum
    v -= lr * g
    p += v


def nesterov_update(p, g, v, lr, momentum):
    """v = momentum * v - lr * g; p += momentum * v - lr * g, in place (Nesterov)."""
    v *= momentum
    v -= lr * g
    p += momentum * v
    p -= lr * g


def adagrad_update(p, g, h, lr, eps):
    """h += g * g; p -= lr * g / (eps + sqrt(h)), in place (AdaGrad)."""
    h += g * g
    p -= lr * g / (eps + np.sqrt(h))


def adadelta_update(p, g, h, r, lr, rho, eps):
    """AdaDelta's step in place: h and r the running averages of g*g and of d*d."""
    h *= rho
    h += (1 - rho) * g * g
    d = -np.sqrt(eps + r) / np.sqrt(eps + h) * g
    p += lr * d
    r *= rho
    r += (1 - rho) * d * d


def rmsprop_update(p, g, h, lr, rho, eps):
    """h = rho * h + (1 - rho) * g * g; p -= lr * g / sqrt(eps + h), in place (RMSProp)."""
    h *= rho
    h += (1 - rho) * g * g
    p -= lr * g / np.sqrt(eps + h)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
    """Adam's step t (1-based) in place: m, v the moments, bias-corrected for the step."""
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    p -= lr * m_hat / (np.sqrt(v_hat) + eps)


def weight_decay_grad(g, w, l2, l1):
    """g += l2 * w + l1 * sign(w), in place (the L2 and L1 penalties' gradient)."""
    g += l2 * w + l1 * np.sign(w)


def ema_update(avg, p, beta):
    """avg = beta * avg + (1 - beta) * p, in place (parameter averages)."""
    avg *= beta
    avg += (1 - beta) * p
