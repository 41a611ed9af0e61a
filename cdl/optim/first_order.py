"""First-order optimizers with the book's ``update(params, grads)``; math in cdl.kernels.optim."""
from cdl.optim.base import Optimizer, check_hyper


class SGD(Optimizer):
    """theta <- theta - lr * g."""

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _step(self, key, p, g, K):
        K.sgd_update(p, g, self.lr)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015): m, v moving averages of g and g*g, bias-corrected.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  m_hat = m / (1-b1^t);
    v_hat = v / (1-b2^t);  theta <- theta - lr * m_hat / (sqrt(v_hat) + eps).
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = check_hyper("Adam", "beta1", beta1, 0, 1)
        self.beta2 = check_hyper("Adam", "beta2", beta2, 0, 1)
        self.eps = check_hyper("Adam", "eps", eps, 0, low_open=True)

    def _step(self, key, p, g, K):
        m, v = self._slots(key, p, "m", "v")
        K.adam_update(p, g, m, v, self.lr, self.beta1, self.beta2, self.eps, self.t)
