"""First-order optimizers with the book's ``update(params, grads)``; math in cdl.kernels.optim.

theta are the parameters, g = dL/dtheta, lr the learning rate; products are
element-wise. Each update is one fused kernel call per array. Every class
takes ``lr_multipliers`` (per-layer rates for fine-tuning, see cdl.optim.base).
"""
from cdl.optim.base import Optimizer, check_hyper


class SGD(Optimizer):
    """theta <- theta - lr * g. lr_multipliers: per-parameter factors of lr (cdl.optim.base)."""

    def __init__(self, lr=0.01, lr_multipliers=None):
        super().__init__(lr, lr_multipliers)

    def _step(self, key, p, g, K, lr):
        K.sgd_update(p, g, lr)


class Momentum(Optimizer):
    """Momentum SGD: v <- momentum * v - lr * g;  theta <- theta + v  (v starts at 0).

    lr_multipliers: per-parameter factors of lr (see cdl.optim.base).
    """

    SLOTS = ("v",)

    def __init__(self, lr=0.01, momentum=0.9, lr_multipliers=None):
        super().__init__(lr, lr_multipliers)
        self.momentum = check_hyper(self.name, "momentum", momentum, 0, 1)

    def _step(self, key, p, g, K, lr):
        (v,) = self._slots(key, p, "v")
        K.momentum_update(p, g, v, lr, self.momentum)


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient, in the look-ahead form that needs one gradient.

    Defined by v_{t+1} = a v_t - lr * dL/d(theta_t + a v_t) and
    theta_{t+1} = theta_t + v_{t+1} (a = momentum). The parameters the model
    holds are the look-ahead point Theta = theta + a v, so the gradient the
    model computes is already the one the definition asks for, and
    v_new = a v - lr g;  Theta <- Theta + a v_new - lr g
    (Bengio, Boulanger-Lewandowski & Pascanu 2012, arXiv:1212.0901, eq. 7; as
    Keras and Chainer do). With v_0 = 0, Theta_0 = theta_0.
    lr_multipliers: per-parameter factors of lr (see cdl.optim.base).
    """

    SLOTS = ("v",)

    def __init__(self, lr=0.01, momentum=0.9, lr_multipliers=None):
        super().__init__(lr, lr_multipliers)
        self.momentum = check_hyper(self.name, "momentum", momentum, 0, 1)

    def _step(self, key, p, g, K, lr):
        (v,) = self._slots(key, p, "v")
        K.nesterov_update(p, g, v, lr, self.momentum)


class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer 2011): h <- h + g*g;  theta <- theta - lr g / (eps + sqrt(h)).

    lr_multipliers: per-parameter factors of lr (see cdl.optim.base).
    """

    SLOTS = ("h",)
    NONNEGATIVE = ("h",)

    def __init__(self, lr=0.01, eps=1e-7, lr_multipliers=None):
        super().__init__(lr, lr_multipliers)
        self.eps = check_hyper(self.name, "eps", eps, 0, low_open=True)

    def _step(self, key, p, g, K, lr):
        (h,) = self._slots(key, p, "h")
        K.adagrad_update(p, g, h, lr, self.eps)


class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012, Algorithm 1): no learning rate to tune.

    h <- rho h + (1-rho) g*g;  d = -(sqrt(eps + r) / sqrt(eps + h)) g;
    theta <- theta + lr * d;  r <- rho r + (1-rho) d*d.
    lr = 1 is the paper's rule; other values scale the step as PyTorch and
    Keras do (r still accumulates the unscaled d). lr_multipliers:
    per-parameter factors of lr (see cdl.optim.base).
    """

    SLOTS = ("h", "r")
    NONNEGATIVE = ("h", "r")

    def __init__(self, lr=1.0, rho=0.95, eps=1e-6, lr_multipliers=None):
        super().__init__(lr, lr_multipliers)
        self.rho = check_hyper(self.name, "rho", rho, 0, 1)
        self.eps = check_hyper(self.name, "eps", eps, 0, low_open=True)

    def _step(self, key, p, g, K, lr):
        h, r = self._slots(key, p, "h", "r")
        K.adadelta_update(p, g, h, r, lr, self.rho, self.eps)


class RMSProp(Optimizer):
    """RMSProp (Hinton, Coursera lecture 6e): h <- rho h + (1-rho) g*g;
    theta <- theta - lr g / sqrt(eps + h).

    The book's sample code names rho ``decay_rate`` (default 0.99 there, and
    its eps is added outside the square root); either keyword is accepted,
    not both. Default rho = 0.9 as in Hinton's lecture. lr_multipliers:
    per-parameter factors of lr (see cdl.optim.base).
    """

    SLOTS = ("h",)
    NONNEGATIVE = ("h",)

    def __init__(self, lr=0.01, rho=None, eps=1e-8, decay_rate=None, lr_multipliers=None):
        super().__init__(lr, lr_multipliers)
        if rho is not None and decay_rate is not None:
            raise ValueError(f"{self.name}: give rho or decay_rate (the book's name for "
                             f"rho), not both")
        if rho is None:
            rho = 0.9 if decay_rate is None else decay_rate
        self.rho = check_hyper(self.name, "rho", rho, 0, 1)
        self.eps = check_hyper(self.name, "eps", eps, 0, low_open=True)

    @property
    def decay_rate(self):
        """The book's name for rho."""
        return self.rho

    def _step(self, key, p, g, K, lr):
        (h,) = self._slots(key, p, "h")
        K.rmsprop_update(p, g, h, lr, self.rho, self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015): m, v moving averages of g and g*g, bias-corrected.

    m <- beta1 m + (1-beta1) g;  v <- beta2 v + (1-beta2) g^2;
    m_hat = m / (1-beta1^t);  v_hat = v / (1-beta2^t);
    theta <- theta - lr * m_hat / (sqrt(v_hat) + eps).
    lr_multipliers: per-parameter factors of lr (see cdl.optim.base).
    """

    SLOTS = ("m", "v")
    NONNEGATIVE = ("v",)

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, lr_multipliers=None):
        super().__init__(lr, lr_multipliers)
        self.beta1 = check_hyper(self.name, "beta1", beta1, 0, 1)
        self.beta2 = check_hyper(self.name, "beta2", beta2, 0, 1)
        self.eps = check_hyper(self.name, "eps", eps, 0, low_open=True)

    def _step(self, key, p, g, K, lr):
        m, v = self._slots(key, p, "m", "v")
        K.adam_update(p, g, m, v, lr, self.beta1, self.beta2, self.eps, self.t)
