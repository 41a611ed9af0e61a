"""Every cdl optimizer on f(x, y) = x^2/20 + y^2 and on Rosenbrock, from the same start.

    python examples/optimizer_compare.py [--max-steps 5000] [--no-plot] [--out examples/out]

The first-order optimizers run over a grid of learning rates (and, for
Momentum and Nesterov, momentum coefficients), each through the same
``opt.update(params, grads)`` a network uses; a run converges when it comes
within --tol of the minimum and diverges when it leaves the plane. The
full-batch ones (Newton, CG, BFGS, L-BFGS, coordinate descent) minimise the
same functions from a closure; their iteration counts are printed beside
the steps of the first-order runs. Then one PNG per function shows each
optimizer's path at its fastest setting over the contours, as in the book's
figure 6-8 (matplotlib needed for the plots only).
"""
import argparse
import os
import time

import numpy as np

from cdl import optim

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
# AdaDelta's step needs no learning rate (lr = 1 is the paper's rule); lr scales it.
GRIDS = {"AdaDelta": [0.1, 0.3, 1.0, 3.0]}
FULL_BATCH = {
    "Newton": lambda: optim.Newton(gtol=1e-8),
    "ConjugateGradient": lambda: optim.ConjugateGradient(gtol=1e-8),
    "BFGS": lambda: optim.BFGS(gtol=1e-8),
    "LBFGS": lambda: optim.LBFGS(gtol=1e-8),
    "CoordinateDescent": lambda: optim.CoordinateDescent(gtol=1e-8, max_iter=20000),
}


def run_first_order(opt, fun, start, target, max_steps, tol):
    """(steps to within tol of target or None, path (k, 2), status)."""
    params = {"xy": start.copy()}
    path = [start.copy()]
    for step in range(1, max_steps + 1):
        _, g = fun(params["xy"])
        opt.update(params, {"xy": g})
        xy = params["xy"]
        path.append(xy.copy())
        if not np.isfinite(xy).all() or np.abs(xy).max() > 1e6:
            return None, np.array(path[:-1]), "diverged"
        if np.linalg.norm(xy - target) < tol:
            return step, np.array(path), "converged"
    return None, np.array(path), "not converged"


def compare(name, max_steps, tol):
    fun, start, target = FUNCTIONS[name], START[name], MINIMUM[name]
    rows, best = [], {}
    for opt_name, make in FIRST_ORDER.items():
        for mu in (MOMENTA if opt_name in USES_MOMENTUM else [None]):
            for lr in GRIDS.get(opt_name, LRS):
                opt = make(lr, 0.9 if mu is None else mu)
                steps, path, status = run_first_order(opt, fun, start, target, max_steps, tol)
                rows.append((opt_name, lr, mu, steps, status))
                # fastest if converged, else the run that ended closest to the minimum
                key = steps if steps is not None else \
                    max_steps + 1 + np.linalg.norm(path[-1] - target)
                if opt_name not in best or key < best[opt_name][0]:
                    best[opt_name] = (key, path, f"lr={lr}" + ("" if mu is None else f", mu={mu}"))
    for opt_name, make in FULL_BATCH.items():
        path = [start.copy()]
        result = make().minimize(fun, start, callback=lambda x, f: path.append(x.copy()))
        ok = np.linalg.norm(result.x - target) < tol
        rows.append((opt_name, None, None, result.nit if ok else None,
                     f"{result.message}, {result.nfev} evaluations"))
        best[opt_name] = (result.nit, np.array(path), f"{result.nfev} evaluations")
    return rows, best


def print_table(name, rows, max_steps):
    print(f"\n{name}: steps to within tolerance of the minimum (max {max_steps}); "
          f"full-batch rows count iterations")
    print(f"{'optimizer':<18} {'lr':>6} {'mu':>4} {'steps':>7}  status")
    for opt_name, lr, mu, steps, status in rows:
        print(f"{opt_name:<18} {'' if lr is None else lr:>6} {'' if mu is None else mu:>4} "
              f"{'-' if steps is None else steps:>7}  {status}")


def plot(name, best, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fun = FUNCTIONS[name]
    lim = ((-10, 10), (-5, 5)) if name == "book" else ((-2, 2), (-1, 3))
    X, Y = np.meshgrid(np.linspace(*lim[0], 300), np.linspace(*lim[1], 300))
    Z = fun(np.stack([X, Y]))[0]
    fig, axes = plt.subplots(3, 4, figsize=(16, 11))
    for ax, (opt_name, (steps, path, label)) in zip(axes.flat, best.items()):
        ax.contour(X, Y, Z, levels=np.geomspace(max(Z.min(), 1e-3), Z.max(), 20), cmap="Greys",
                   linewidths=0.6)
        ax.plot(path[:, 0], path[:, 1], "o-", color="tab:red", markersize=2, linewidth=0.8)
        ax.plot(*MINIMUM[name], "+", color="tab:blue", markersize=12)
        ax.set_xlim(*lim[0])
        ax.set_ylim(*lim[1])
        ax.set_title(f"{opt_name} ({label}): {len(path) - 1} steps", fontsize=9)
    for ax in list(axes.flat)[len(best):]:
        ax.axis("off")
    fig.suptitle(f"{name}: paths at each optimizer's fastest setting")
    fig.tight_layout()
    path = os.path.join(out, f"optimizer_paths_{name}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-steps", type=int, default=5000)
    p.add_argument("--tol", type=float, default=1e-3, help="distance to the minimum")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for name in FUNCTIONS:
        start = time.perf_counter()
        rows, best = compare(name, args.max_steps, args.tol)
        print_table(name, rows, args.max_steps)
        print(f"({time.perf_counter() - start:.1f}s)")
        if not args.no_plot:
            print(f"saved {plot(name, best, args.out)}")


if __name__ == "__main__":
    main()
