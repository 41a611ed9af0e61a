"""Full-batch optimizers on a flat parameter vector: Newton, CG, BFGS, L-BFGS, coordinate descent.

Each minimises f from x0 given a closure ``fun(x) -> (f, g)`` that returns
the loss and its gradient (a 1-D float64 vector of x's size):

    result = optim.LBFGS(gtol=1e-6).minimize(fun, x0)
    result.x, result.fun, result.nit, result.converged

``model_closure(net, x, t)`` turns a Sequential and a data set into such a
closure (the whole data set is one batch), and ``opt.fit(net, x, t)`` runs it
and leaves the minimiser in the net. Cast the net to float64 first
(``net.astype(np.float64)``): in float32 the line search sees rounding noise.

Iterations stop when the largest gradient entry is at most gtol (scipy's
criterion), after max_iter iterations, or when the line search finds no
acceptable step. References: Nocedal & Wright, Numerical Optimization (2nd
ed.), chapters 3 (Newton with Hessian modification), 5 (nonlinear CG),
6 (BFGS) and 7 (L-BFGS); Wright 2015 for coordinate descent.
"""
import abc
from collections import deque

import numpy as np

from cdl.optim.base import check_count, check_hyper
from cdl.optim.linesearch import Point, strong_wolfe


class Result:
    """What a full-batch run found: x, fun, grad, nit, nfev, converged, message, history."""

    def __init__(self, x, fun, grad, nit, nfev, converged, message, history):
        self.x, self.fun, self.grad = x, fun, grad
        self.nit, self.nfev = nit, nfev
        self.converged, self.message = converged, message
        self.history = history

    def __repr__(self):
        return (f"Result(fun={self.fun:.6g}, nit={self.nit}, nfev={self.nfev}, "
                f"converged={self.converged}, message={self.message!r})")


class _Objective:
    """Wraps fun: checks what it returns, counts evaluations, evaluates along a line."""

    def __init__(self, who, fun, n):
        self.who, self.fun, self.n, self.nfev = who, fun, n, 0

    def __call__(self, x):
        self.nfev += 1
        out = self.fun(x)
        if not isinstance(out, tuple) or len(out) != 2:
            raise ValueError(f"{self.who}: the closure must return (loss, grad), got "
                             f"{type(out).__name__}")
        f, g = out
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        if g.size != self.n:
            raise ValueError(f"{self.who}: the closure returned a gradient of {g.size} "
                             f"entries for {self.n} parameters")
        return float(f), g

    def along(self, x, d):
        """phi(alpha) -> Point for the line x + alpha d."""
        def phi(alpha):
            f, g = self(x + alpha * d)
            return Point(alpha, f, float(g @ d), g)
        return phi


class FullBatchOptimizer(abc.ABC):
    """Base: ``minimize(fun, x0)`` and ``fit(net, x, t)``; subclasses write ``_iterate``.

    Iterations stop once max(|g|) <= gtol or after max_iter iterations.
    """

    first_order = False  # needs a closure over the whole data set, not update(params, grads)

    def __init__(self, max_iter=200, gtol=1e-5):
        self.max_iter = check_count(self.name, "max_iter", max_iter)
        self.gtol = check_hyper(self.name, "gtol", gtol, 0, low_open=True)

    @property
    def name(self):
        """The class name, used in error messages and in repr."""
        return type(self).__name__

    def minimize(self, fun, x0, callback=None):
        """Minimise fun from x0; callback(x, f) after each iteration. Returns a Result."""
        x = np.array(x0, dtype=np.float64).reshape(-1)
        if x.size == 0 or not np.isfinite(x).all():
            raise ValueError(f"{self.name}.minimize: x0 must be a non-empty finite vector, "
                             f"got shape {np.shape(x0)}")
        obj = _Objective(self.name, fun, x.size)
        f, g = obj(x)
        if not np.isfinite(f) or not np.isfinite(g).all():
            raise ValueError(f"{self.name}.minimize: loss or gradient is not finite at x0")
        history = [f]
        state = self._start(x)
        nit, message = 0, "reached max_iter"
        while True:
            if np.abs(g).max() <= self.gtol:
                message = "gradient below gtol"
                break
            if nit >= self.max_iter:
                break
            step = self._iterate(obj, x, f, g, state)
            if step is None:
                message = "line search found no acceptable step"
                break
            x, f, g = step
            nit += 1
            history.append(f)
            if callback is not None:
                callback(x, f)
        return Result(x, f, g, nit, obj.nfev, message == "gradient below gtol", message,
                      history)

    def fit(self, net, x, t, callback=None):
        """Minimise net's full-batch loss on (x, t) from its current parameters; the
        minimiser is written back into net. Returns the Result."""
        fun, theta0 = model_closure(net, x, t)
        result = self.minimize(fun, theta0, callback)
        set_flat(net.params, result.x)
        return result

    def _start(self, x):
        """Per-run state (Hessian approximations, memory)."""
        return {}

    @abc.abstractmethod
    def _iterate(self, obj, x, f, g, state):
        """One iteration from (x, f, g): the new (x, f, g), or None when stuck."""

    @staticmethod
    def _line_step(obj, x, f, g, d, alpha1, c2):
        """Strong Wolfe step along d: (x + alpha d, f, g, alpha), or None."""
        slope = float(g @ d)
        if not slope < 0:
            return None
        p = strong_wolfe(obj.along(x, d), Point(0.0, f, slope, g), alpha1=alpha1, c2=c2)
        if p is None or p.alpha == 0:
            return None
        return x + p.alpha * d, p.f, p.grad, p.alpha

    def __repr__(self):
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _first_alpha(g):
    """First trial step along -g when nothing is known of the scale: a step of length 1.
    (scipy's BFGS and CG start from the same guess.)"""
    return min(1.0, 1.0 / max(np.linalg.norm(g), 1e-300))


class Newton(FullBatchOptimizer):
    """Damped Newton: solve (H + tau I) p = -g, then a line search along p.

    tau is 0 when H is positive definite, else grown until the Cholesky
    factorisation succeeds (N&W Algorithm 3.3). H is ``hess(x)`` when given,
    else central differences of the gradient, column by column (2n closure
    calls per iteration; refused beyond max_params parameters), with step
    h = fd_step * max(1, |x_i|) for coordinate i. Stops once max(|g|) <= gtol
    or after max_iter iterations.
    """

    def __init__(self, max_iter=100, gtol=1e-5, hess=None, fd_step=1e-5, max_params=2000):
        super().__init__(max_iter, gtol)
        if hess is not None and not callable(hess):
            raise ValueError(f"Newton: hess must be callable x -> (n, n) array, got {hess!r}")
        self.hess = hess
        self.fd_step = check_hyper("Newton", "fd_step", fd_step, 0, 1, low_open=True)
        self.max_params = check_count("Newton", "max_params", max_params)

    def _start(self, x):
        if self.hess is None and x.size > self.max_params:
            raise ValueError(f"Newton: a finite-difference Hessian of {x.size} parameters "
                             f"needs {2 * x.size} gradient evaluations per iteration (limit "
                             f"max_params={self.max_params}); use LBFGS for models this size")
        return {}

    def hessian(self, obj, x):
        """H (n, n): hess(x), or central differences of the gradient, symmetrised."""
        n = x.size
        if self.hess is not None:
            H = np.asarray(self.hess(x), dtype=np.float64)
            if H.shape != (n, n):
                raise ValueError(f"Newton: hess returned shape {H.shape}, expected {(n, n)}")
            return H
        H = np.empty((n, n))
        for i in range(n):
            h = self.fd_step * max(1.0, abs(x[i]))
            e = np.zeros(n)
            e[i] = h
            H[:, i] = (obj(x + e)[1] - obj(x - e)[1]) / (2 * h)
        return 0.5 * (H + H.T)

    def _iterate(self, obj, x, f, g, state):
        H = self.hessian(obj, x)
        if not np.isfinite(H).all():
            return None
        beta = 1e-3 * max(1.0, np.abs(np.diag(H)).max())
        tau = 0.0 if np.diag(H).min() > 0 else beta - np.diag(H).min()
        eye = np.eye(x.size)
        while True:
            try:
                L = np.linalg.cholesky(H + tau * eye)
                break
            except np.linalg.LinAlgError:
                tau = max(2.0 * tau, beta)
        d = -np.linalg.solve(L.T, np.linalg.solve(L, g))
        step = self._line_step(obj, x, f, g, d, 1.0, 0.9)
        return None if step is None else step[:3]


class ConjugateGradient(FullBatchOptimizer):
    """Nonlinear conjugate gradients, Polak-Ribiere+ (N&W eq. 5.44-5.45).

    d <- -g + beta d with beta = max(0, g_new.(g_new - g) / g.g), restarted
    as steepest descent when d stops being a descent direction or when
    |g_new.g| >= 0.2 g_new.g_new (N&W eq. 5.52); each step a strong Wolfe
    line search with c2 = 0.1 (nearly exact, as CG needs). Stops once
    max(|g|) <= gtol or after max_iter iterations.
    """

    def __init__(self, max_iter=500, gtol=1e-5, c2=0.1):
        super().__init__(max_iter, gtol)
        self.c2 = check_hyper("ConjugateGradient", "c2", c2, 0, 1, low_open=True)

    def _start(self, x):
        return {"d": None, "g": None, "f_prev": None}

    def _iterate(self, obj, x, f, g, state):
        d, g_old = state["d"], state["g"]
        conjugate = d is not None and abs(float(g @ g_old)) < 0.2 * float(g @ g)
        if conjugate:
            beta = max(0.0, float(g @ (g - g_old)) / float(g_old @ g_old))
            d = -g + beta * d
            conjugate = float(g @ d) < 0
        if not conjugate:
            # First step, or Powell's restart: successive gradients far from orthogonal.
            d = -g
        # N&W eq. (3.60): a first trial step that repeats the last decrease in f.
        alpha1 = _first_alpha(g) if state["f_prev"] is None else \
            min(1.0, 2.02 * (f - state["f_prev"]) / float(g @ d))
        step = self._line_step(obj, x, f, g, d, alpha1 if alpha1 > 0 else 1.0, self.c2)
        if step is None and conjugate:
            d = -g  # restart as steepest descent before giving up
            step = self._line_step(obj, x, f, g, d, _first_alpha(g), self.c2)
        if step is None:
            return None
        state.update(d=d, g=g, f_prev=f)
        return step[:3]


class BFGS(FullBatchOptimizer):
    """BFGS: a dense inverse-Hessian approximation Hk, d = -Hk g (N&W Algorithm 6.1).

    Hk+1 = (I - rho s y^T) Hk (I - rho y s^T) + rho s s^T, rho = 1 / y.s,
    with H0 = (y.s / y.y) I set after the first step (N&W eq. 6.20); pairs
    with y.s <= 0 are skipped. Stops once max(|g|) <= gtol or after max_iter
    iterations.
    """

    def __init__(self, max_iter=500, gtol=1e-5):
        super().__init__(max_iter, gtol)

    def _start(self, x):
        return {"H": None}

    def _iterate(self, obj, x, f, g, state):
        H = state["H"]
        d = -g if H is None else -(H @ g)
        step = self._line_step(obj, x, f, g, d, _first_alpha(g) if H is None else 1.0, 0.9)
        if step is None:
            return None
        x_new, _, g_new, _ = step
        s, y = x_new - x, g_new - g
        ys = float(y @ s)
        if ys > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
            if H is None:
                H = (ys / float(y @ y)) * np.eye(x.size)
            rho = 1.0 / ys
            Hy = H @ y
            # Expanded product form of the update: no n x n temporaries beyond H itself.
            H += (rho * rho * float(y @ Hy) + rho) * np.outer(s, s) \
                - rho * (np.outer(Hy, s) + np.outer(s, Hy))
            state["H"] = H
        return step[:3]


class LBFGS(FullBatchOptimizer):
    """Limited-memory BFGS: the last ``memory`` pairs (s, y) and the two-loop recursion
    for d = -Hk g, H0 = (s.y / y.y) I from the newest pair (N&W Algorithm 7.4).

    Stops once max(|g|) <= gtol or after max_iter iterations.
    """

    def __init__(self, max_iter=500, gtol=1e-5, memory=10):
        super().__init__(max_iter, gtol)
        self.memory = check_count("LBFGS", "memory", memory)

    def _start(self, x):
        return {"pairs": deque(maxlen=self.memory)}

    def _direction(self, g, pairs):
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(pairs):
            a = rho * float(s @ q)
            q -= a * y
            alphas.append(a)
        s, y, _ = pairs[-1]
        q *= float(s @ y) / float(y @ y)
        for (s, y, rho), a in zip(pairs, reversed(alphas)):
            q += (a - rho * float(y @ q)) * s
        return -q

    def _iterate(self, obj, x, f, g, state):
        pairs = state["pairs"]
        d = self._direction(g, pairs) if pairs else -g
        step = self._line_step(obj, x, f, g, d, 1.0 if pairs else _first_alpha(g), 0.9)
        if step is None:
            return None
        x_new, _, g_new, _ = step
        s, y = x_new - x, g_new - g
        ys = float(y @ s)
        if ys > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
            pairs.append((s, y, 1.0 / ys))
        return step[:3]


class CoordinateDescent(FullBatchOptimizer):
    """Block coordinate descent: minimise along one block of coordinates at a time.

    One iteration is a sweep over the blocks in order; for each block B the
    search direction is -g restricted to B, and a strong Wolfe line search
    with small c2 minimises along it (exactly on a quadratic: with blocks of
    one coordinate a sweep is then a Gauss-Seidel sweep). blocks is a block
    size or a list of index arrays covering the coordinates. Each block costs
    a few closure calls of the whole gradient: meant for tiny problems.
    Stops once max(|g|) <= gtol or after max_iter sweeps.
    """

    def __init__(self, max_iter=1000, gtol=1e-5, blocks=1, c2=0.01):
        super().__init__(max_iter, gtol)
        if isinstance(blocks, (int, np.integer, bool, np.bool_)):
            blocks = check_count("CoordinateDescent", "block size", blocks)
        self.blocks = blocks
        self.c2 = check_hyper("CoordinateDescent", "c2", c2, 0, 1, low_open=True)

    def _start(self, x):
        n = x.size
        if isinstance(self.blocks, int):
            size = self.blocks
            blocks = [np.arange(i, min(n, i + size)) for i in range(0, n, size)]
        else:
            blocks = [np.asarray(b, dtype=np.intp).reshape(-1) for b in self.blocks]
            covered = np.concatenate(blocks) if blocks else np.empty(0, np.intp)
            if covered.size and (covered.min() < 0 or covered.max() >= n):
                raise ValueError(f"CoordinateDescent: block indices must lie in [0, {n})")
            if covered.size != n or np.unique(covered).size != n:
                raise ValueError(f"CoordinateDescent: blocks must cover each of the {n} "
                                 f"coordinates exactly once")
        return {"blocks": blocks, "alpha": [1.0] * len(blocks)}

    def _iterate(self, obj, x, f, g, state):
        moved = False
        for i, block in enumerate(state["blocks"]):
            d = np.zeros_like(x)
            d[block] = -g[block]
            if not d.any():
                continue
            step = self._line_step(obj, x, f, g, d, state["alpha"][i], self.c2)
            if step is None:
                continue
            # The next sweep's search on this block starts from the step that worked.
            x, f, g, state["alpha"][i] = step
            moved = True
        return (x, f, g) if moved else None


def get_flat(params):
    """The arrays of the flat dict params concatenated into one float64 vector (dict
    order)."""
    return np.concatenate([p.reshape(-1) for p in params.values()]).astype(np.float64)


def set_flat(params, theta):
    """Copy vector theta back into the arrays of params, in place (dict order)."""
    n = sum(p.size for p in params.values())
    theta = np.asarray(theta).reshape(-1)
    if theta.size != n:
        raise ValueError(f"set_flat: vector of {theta.size} entries for {n} parameters")
    offset = 0
    for p in params.values():
        p[...] = theta[offset:offset + p.size].reshape(p.shape)
        offset += p.size


def model_closure(net, x, t):
    """(fun, theta0): fun(theta) loads theta into net.params, runs net.loss(x, t) and
    net.backward() on the whole data set and returns (loss, flat float64 gradient)."""
    params = net.params
    if not params:
        raise ValueError("model_closure: the model has no trainable parameters")

    def fun(theta):
        set_flat(params, theta)
        loss = net.loss(x, t)
        net.backward(input_grad=False)
        return loss, get_flat(net.grads)

    return fun, get_flat(params)
