"""First-order optimizers with the book's ``update(params, grads)``; math in cdl.kernels.optim.

theta are the parameters, g = dL/dtheta, lr the learning rate; products are
element-wise. Each update is one fused kernel call per array.
"""
from cdl.optim.base import Optimizer, check_hyper


class SGD(Optimizer):
    """theta <- theta - lr * g."""

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _step(self, key, p, g, K):
        K.sgd_update(p, g, self.lr)


class Momentum(Optimizer):
    """Momentum SGD: v <- momentum * v - lr * g;  theta <- theta + v  (v starts at 0)."""

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = check_hyper(self.name, "momentum", momentum, 0, 1)

    def _step(self, key, p, g, K):
        (v,) = self._slots(key, p, "v")
        K.momentum_update(p, g, v, self.lr, self.momentum)


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient, in the look-ahead form that needs one gradient.

    Defined by v_{t+1} = a v_t - lr * dL/d(theta_t + a v_t) and
    theta_{t+1} = theta_t + v_{t+1} (a = momentum). The parameters the model
    holds are the look-ahead point Theta = theta + a v, so the gradient the
    model computes is already the one the definition asks for, and
    v_new = a v - lr g;  Theta <- Theta + a v_new - lr g
    (Bengio, Boulanger-Lewandowski & Pascanu 2012, arXiv:1212.0901, eq. 7; as
    Keras and Chainer do). With v_0 = 0, Theta_0 = theta_0.
    """

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = check_hyper(self.name, "momentum", momentum, 0, 1)

    def _step(self, key, p, g, K):
        (v,) = self._slots(key, p, "v")
        K.nesterov_update(p, g, v, self.lr, self.momentum)


class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer 2011): h <- h + g*g;  theta <- theta - lr g / (eps + sqrt(h))."""

    def __init__(self, lr=0.01, eps=1e-7):
        super().__init__(lr)
        self.eps = check_hyper(self.name, "eps", eps, 0, low_open=True)

    def _step(self, key, p, g, K):
        (h,) = self._slots(key, p, "h")
        K.adagrad_update(p, g, h, self.lr, self.eps)


class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012, Algorithm 1): no learning rate to tune.

    h <- rho h + (1-rho) g*g;  d = -(sqrt(eps + r) / sqrt(eps + h)) g;
    theta <- theta + lr * d;  r <- rho r + (1-rho) d*d.
    lr = 1 is the paper's rule; other values scale the step as PyTorch and
    Keras do (r still accumulates the unscaled d).
    """

    def __init__(self, lr=1.0, rho=0.95, eps=1e-6):
        super().__init__(lr)
        self.rho = check_hyper(self.name, "rho", rho, 0, 1)
        self.eps = check_hyper(self.name, "eps", eps, 0, low_open=True)

    def _step(self, key, p, g, K):
        h, r = self._slots(key, p, "h", "r")
        K.adadelta_update(p, g, h, r, self.lr, self.rho, self.eps)


class RMSProp(Optimizer):
    """RMSProp (Hinton, Coursera lecture 6e): h <- rho h + (1-rho) g*g;
    theta <- theta - lr g / sqrt(eps + h).

    The book's sample code names rho ``decay_rate`` (default 0.99 there, and
    its eps is added outside the square root); either keyword is accepted,
    not both. Default rho = 0.9 as in Hinton's lecture.
    """

    def __init__(self, lr=0.01, rho=None, eps=1e-8, decay_rate=None):
        super().__init__(lr)
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

    def _step(self, key, p, g, K):
        (h,) = self._slots(key, p, "h")
        K.rmsprop_update(p, g, h, self.lr, self.rho, self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015): m, v moving averages of g and g*g, bias-corrected.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  m_hat = m / (1-b1^t);
    v_hat = v / (1-b2^t);  theta <- theta - lr * m_hat / (sqrt(v_hat) + eps).
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = check_hyper(self.name, "beta1", beta1, 0, 1)
        self.beta2 = check_hyper(self.name, "beta2", beta2, 0, 1)
        self.eps = check_hyper(self.name, "eps", eps, 0, low_open=True)

    def _step(self, key, p, g, K):
        m, v = self._slots(key, p, "m", "v")
        K.adam_update(p, g, m, v, self.lr, self.beta1, self.beta2, self.eps, self.t)
