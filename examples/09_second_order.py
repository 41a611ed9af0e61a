"""Second-order methods (Newton, CG, BFGS, L-BFGS) against Adam on a small full-batch problem.

    python examples/09_second_order.py [--hidden 16] [--n 500] [--iters 100] [--quick]

A 64-16-10 tanh MLP (1,210 parameters, float64) fitted to the first --n
images of the 8x8 digits shipped with cdl, the whole set as one batch, from
the same initial weights: Newton (finite-difference Hessian, 2n gradient
evaluations per iteration), nonlinear conjugate gradient, BFGS and L-BFGS
through ``opt.minimize(fun, theta)`` on the closure of
``cdl.optim.model_closure``, and Adam taking one full-batch step per
iteration. Prints the loss each reaches, iterations, gradient evaluations
and seconds, and saves the loss against iterations and against seconds (log):
per iteration the second-order methods win by far; per second the
Hessian's cost puts Newton behind, while L-BFGS stays ahead.
"""
import time

import numpy as np

import _common
import cdl
from cdl import data, optim, viz
from cdl import layers as L


def mlp(hidden, seed):
    rng = np.random.default_rng(seed)
    net = cdl.Sequential([L.Flatten(), L.Affine(64, hidden, init="xavier_normal", rng=rng),
                          L.Tanh(), L.Affine(hidden, 10, init="xavier_normal", rng=rng)],
                         loss=L.SoftmaxCrossEntropy())
    return net.astype(np.float64)  # the line searches need float64: float32 is rounding noise


def run_adam(fun, theta0, iters, lr):
    """Adam on the full batch: (losses, times, evaluations); point k is the loss after k
    steps and the seconds until it was known."""
    params, opt = {"theta": theta0.copy()}, optim.Adam(lr=lr)
    losses, times = [], []
    start = time.perf_counter()
    for _ in range(iters + 1):
        f, g = fun(params["theta"])
        losses.append(f)
        times.append(time.perf_counter() - start)
        opt.update(params, {"theta": g})
    return losses, times, iters + 1


def run_full_batch(opt, fun, theta0):
    """(losses, times, evaluations) of a full-batch optimizer, a point per iteration."""
    calls = [0]

    def counted(theta):
        calls[0] += 1
        return fun(theta)

    start = time.perf_counter()
    losses = [counted(theta0)[0]]
    times = [time.perf_counter() - start]

    def callback(theta, f):
        losses.append(f)
        times.append(time.perf_counter() - start)

    opt.minimize(counted, theta0, callback=callback)
    return losses, times, calls[0]


def main(argv=None):
    p = _common.parser(__doc__, "hidden 4, 150 images, 10 iterations")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--n", type=int, default=500, help="images in the full batch")
    p.add_argument("--iters", type=int, default=100, help="iterations (Newton: a fifth)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    args = p.parse_args(argv)
    if args.quick:
        args.hidden, args.n, args.iters = 4, 150, 10
    (x, t), _ = data.load_digits()
    x, t = x[:args.n].astype(np.float64), t[:args.n]
    net = mlp(args.hidden, args.seed)
    fun, theta0 = optim.model_closure(net, x, t)
    f0 = fun(theta0)[0]
    print(f"{args.hidden}-unit tanh MLP, {theta0.size:,} parameters, full batch of {len(x)} "
          f"digits, float64; loss at the start {f0:.4f}")
    gtol = 1e-6
    runs = {
        f"Adam (lr {args.lr:g})": lambda: run_adam(fun, theta0, args.iters, args.lr),
        "Newton": lambda: run_full_batch(
            optim.Newton(max_iter=max(3, args.iters // 5), gtol=gtol), fun, theta0),
        "CG": lambda: run_full_batch(optim.ConjugateGradient(max_iter=args.iters, gtol=gtol),
                                     fun, theta0),
        "BFGS": lambda: run_full_batch(optim.BFGS(max_iter=args.iters, gtol=gtol), fun, theta0),
        "L-BFGS": lambda: run_full_batch(optim.LBFGS(max_iter=args.iters, gtol=gtol), fun,
                                         theta0),
    }
    results, rows = {}, []
    for name, go in runs.items():
        losses, times, evals = go()
        results[name] = (losses, times)
        rows.append((name, f"{losses[-1]:.2e}", len(losses) - 1, evals, f"{times[-1]:.2f}"))
    _common.table(rows, ("method", "final loss", "iterations", "gradient evals", "seconds"))
    panels = {"loss vs iterations": {k: (np.arange(len(v[0])), v[0])
                                     for k, v in results.items()},
              "loss vs seconds": {k: (v[1], v[0]) for k, v in results.items()}}
    _common.figure(args.out, "09_second_order.png", viz.curves, panels,
                   xlabel=["iteration", "seconds"], ylabel="training loss (full batch)",
                   logy=True, logx=[False, True], max_cols=2,
                   title=f"{theta0.size:,}-parameter MLP on {len(x)} digits")
    return results


if __name__ == "__main__":
    main()
