"""Optimizers on f(x, y) = x^2/20 + y^2 and on real data (the book's section 6.1).

    python examples/01_optimizers.py [--iters 1000] [--sweep] [--quick] [--out DIR]

Part 1: from (-7, 2), 30 steps of each first-order optimizer with the book's
settings (SGD lr 0.95, Momentum lr 0.1, AdaGrad lr 1.5, Adam lr 0.3; the
others alike), each through the same ``opt.update(params, grads)`` a network
uses. Prints where each ends and saves the paths over the contour lines
(the book's figure 6-8). --sweep adds, for this function and Rosenbrock's,
the number of steps each optimizer needs to come within 1e-3 of the minimum
over a grid of learning rates (and momenta), next to the iteration counts
of the full-batch methods (Newton, CG, BFGS, L-BFGS, coordinate descent).

Part 2: a 5-layer ReLU MLP (four hidden layers of 100) on Fashion-MNIST
(the 8x8 digits shipped with cdl when it is not installed), mini-batches of
128, every optimizer from the same initial weights and the same batches;
prints the loss at the start and the end and the test accuracy, and saves
the loss curves (the book's figure 6-9).
"""
import time

import numpy as np

import _common
from cdl import optim, viz

START = {"book": np.array([-7.0, 2.0]), "rosenbrock": np.array([-1.2, 1.0])}
MINIMUM = {"book": np.array([0.0, 0.0]), "rosenbrock": np.array([1.0, 1.0])}


def book_f(v):
    """f(x, y) = x^2/20 + y^2 and its gradient (the book's section 6.1.3)."""
    x, y = v
    return x * x / 20 + y * y, np.array([x / 10, 2 * y])


def rosenbrock(v):
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 and its gradient."""
    x, y = v
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2, \
        np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


FUNCTIONS = {"book": book_f, "rosenbrock": rosenbrock}

# The book's settings for figure 6-8 (SGD, Momentum, AdaGrad, Adam) and alike for the others.
BOOK_SETTINGS = {
    "SGD": lambda: optim.SGD(lr=0.95),
    "Momentum": lambda: optim.Momentum(lr=0.1, momentum=0.9),
    "Nesterov": lambda: optim.Nesterov(lr=0.1, momentum=0.9),
    "AdaGrad": lambda: optim.AdaGrad(lr=1.5),
    "AdaDelta": lambda: optim.AdaDelta(lr=1.0, rho=0.95, eps=1e-2),
    "RMSProp": lambda: optim.RMSProp(lr=0.3),
    "Adam": lambda: optim.Adam(lr=0.3),
}
# Part 2: the book's learning rates for figure 6-9 (SGD, Momentum, AdaGrad 0.01; Adam 1e-3)
DATA_SETTINGS = {
    "SGD": lambda: optim.SGD(lr=0.01),
    "Momentum": lambda: optim.Momentum(lr=0.01),
    "Nesterov": lambda: optim.Nesterov(lr=0.01),
    "AdaGrad": lambda: optim.AdaGrad(lr=0.01),
    "AdaDelta": lambda: optim.AdaDelta(lr=1.0),
    "RMSProp": lambda: optim.RMSProp(lr=1e-3),
    "Adam": lambda: optim.Adam(lr=1e-3),
}

# --sweep: learning-rate grids
LRS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.95]
MOMENTA = [0.5, 0.9]
FIRST_ORDER = {
    "SGD": lambda lr, mu: optim.SGD(lr=lr),
    "Momentum": lambda lr, mu: optim.Momentum(lr=lr, momentum=mu),
    "Nesterov": lambda lr, mu: optim.Nesterov(lr=lr, momentum=mu),
    "AdaGrad": lambda lr, mu: optim.AdaGrad(lr=lr),
    "AdaDelta": lambda lr, mu: optim.AdaDelta(lr=lr, rho=0.95, eps=1e-4),
    "RMSProp": lambda lr, mu: optim.RMSProp(lr=lr),
    "Adam": lambda lr, mu: optim.Adam(lr=lr, beta1=mu),
}
USES_MOMENTUM = {"Momentum", "Nesterov", "Adam"}
GRIDS = {"AdaDelta": [0.1, 0.3, 1.0, 3.0]}  # lr = 1 is the paper's rule; lr scales the step
FULL_BATCH = {
    "Newton": lambda: optim.Newton(gtol=1e-8),
    "ConjugateGradient": lambda: optim.ConjugateGradient(gtol=1e-8),
    "BFGS": lambda: optim.BFGS(gtol=1e-8),
    "LBFGS": lambda: optim.LBFGS(gtol=1e-8),
    "CoordinateDescent": lambda: optim.CoordinateDescent(gtol=1e-8, max_iter=20000),
}


def run(opt, fun, start, steps, target=None, tol=None):
    """(path (k, 2), status) of opt from start: steps updates, or until within tol of
    target, or until it leaves the plane."""
    params = {"xy": start.copy()}
    path = [start.copy()]
    for _ in range(steps):
        _, g = fun(params["xy"])
        opt.update(params, {"xy": g})
        xy = params["xy"]
        if not np.isfinite(xy).all() or np.abs(xy).max() > 1e6:
            return np.array(path), "diverged"
        path.append(xy.copy())
        if target is not None and np.linalg.norm(xy - target) < tol:
            return np.array(path), "converged"
    return np.array(path), "not converged" if target is not None else ""


def part1(args):
    print("Part 1: 30 steps on f(x, y) = x^2/20 + y^2 from (-7, 2), the book's settings")
    paths, rows = {}, []
    for name, make in BOOK_SETTINGS.items():
        path, _ = run(make(), book_f, START["book"], 30)
        paths[name] = path
        end = path[-1]
        rows.append((name, f"({end[0]:.3f}, {end[1]:.3f})", f"{book_f(end)[0]:.2e}"))
    _common.table(rows, ("optimizer", "after 30 steps", "f"))
    titles = {name: f"{name}: f = {book_f(p[-1])[0]:.1e} after 30" for name, p in paths.items()}
    _common.figure(args.out, "01_optimizer_paths.png", viz.optimizer_paths,
                   lambda x, y: x * x / 20 + y * y, paths, xlim=(-10, 10), ylim=(-5, 5),
                   minimum=(0, 0), titles=titles)


def sweep(name, max_steps=5000, tol=1e-3):
    """Steps to within tol of the minimum for every optimizer over its grid."""
    fun, start, target = FUNCTIONS[name], START[name], MINIMUM[name]
    rows = []
    for opt_name, make in FIRST_ORDER.items():
        for mu in (MOMENTA if opt_name in USES_MOMENTUM else [None]):
            for lr in GRIDS.get(opt_name, LRS):
                path, status = run(make(lr, 0.9 if mu is None else mu), fun, start, max_steps,
                                   target, tol)
                rows.append((opt_name, lr, "" if mu is None else mu,
                             len(path) - 1 if status == "converged" else "-", status))
    for opt_name, make in FULL_BATCH.items():
        result = make().minimize(fun, start)
        ok = np.linalg.norm(result.x - target) < tol
        rows.append((opt_name, "", "", result.nit if ok else "-",
                     f"{result.message}, {result.nfev} evaluations"))
    print(f"\n--sweep, {name}: steps to within {tol} of the minimum (at most {max_steps}); "
          f"full-batch rows count iterations")
    _common.table(rows, ("optimizer", "lr", "mu", "steps", "status"))


def part2(args, iters):
    name, (x, t), (xt, tt) = _common.load(flatten=True, quick=args.quick)
    print(f"\nPart 2: 5-layer ReLU MLP on {name} ({len(x)} train / {len(xt)} test), "
          f"batch 128, {iters} iterations, the same batches for every optimizer")
    batches = np.random.default_rng(args.seed).integers(0, len(x), (iters, 128))
    curves, rows = {}, []
    for opt_name, make in DATA_SETTINGS.items():
        net, opt = _common.mlp(x.shape[1], int(t.max()) + 1, 4, args.seed), make()
        start = time.perf_counter()
        curves[opt_name] = losses = _common.train_steps(net, opt, x, t, batches)
        k = max(1, iters // 20)
        rows.append((f"{opt_name} (lr {opt.lr:g})", f"{np.mean(losses[:k]):.3f}",
                     f"{np.mean(losses[-k:]):.3f}", f"{net.accuracy(xt, tt):.1%}",
                     f"{time.perf_counter() - start:.1f}s"))
    _common.table(rows, ("optimizer", f"loss, first {k}", f"last {k}", "test acc", "time"))
    _common.figure(args.out, "01_optimizers_training.png", viz.curves, curves,
                   xlabel="iteration", ylabel=f"training loss (mean of {min(20, iters // 5)})",
                   smooth=min(20, iters // 5), logy=True,
                   title=f"5-layer MLP on {name}, batch 128")


def main(argv=None):
    p = _common.parser(__doc__, "part 2 for 60 iterations, no sweep")
    p.add_argument("--iters", type=int, default=1000, help="mini-batches in part 2")
    p.add_argument("--sweep", action="store_true",
                   help="steps to converge over learning-rate grids (a minute)")
    args = p.parse_args(argv)
    part1(args)
    if args.sweep and not args.quick:
        for name in FUNCTIONS:
            sweep(name)
    part2(args, 60 if args.quick else args.iters)


if __name__ == "__main__":
    main()
