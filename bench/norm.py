"""BatchNorm fwd + bwd: cdl vs the book's NumPy formulas vs PyTorch CPU; augmentation img/s.

    python bench/norm.py [--repeat 20] [--warmup 3] [--threads 2] [--quick]

BatchNorm: three contenders timed interleaved in one process with the same
thread count, each one training-mode forward and one backward with a fixed
dout: cdl's BatchNorm layer (fused Numba kernels), the book's
BatchNormalization formulas in NumPy (cdl.kernels.reference, in the input's
float32: mean, centre, variance, divide, scale; backward through dstd,
dvar, dmu), and torch.nn.functional.batch_norm with autograd when torch is
installed. The headline shape is (100, 64, 16, 16) float32 (target: at
least 3x the NumPy version).

Augmentation: images per second through Compose([HorizontalFlip,
Rotation(15), RandomResizedCrop, Cutout]) on 100-image batches of 28x28
grey and 32x32 RGB, fused (one warp for the three geometric transforms, as
Compose runs them) and unfused (each transform resampling on its own).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import numpy as np  # noqa: E402

BN_SHAPES = [(100, 64, 16, 16), (100, 16, 28, 28), (32, 256, 8, 8), (100, 512), (256, 1024)]
AUG_SHAPES = [(100, 1, 28, 28), (100, 3, 32, 32)]


def bench_batchnorm(shape, repeat, warmup, torch):
    from cdl import layers as L
    from cdl.kernels import reference as ref
    rng = np.random.default_rng(0)
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    dout = rng.standard_normal(shape).astype(np.float32)
    bn = L.BatchNorm(C)
    gamma, beta = bn.params["gamma"], bn.params["beta"]

    def run_cdl():
        bn.forward(x, train=True)
        return bn.backward(dout)

    def run_numpy():
        y, xc, xn, std, _, _ = ref.batchnorm_forward(x, gamma, beta, bn.eps)
        return ref.batchnorm_backward(dout, gamma, xc, xn, std)[0]

    # same answer before timing anything
    np.testing.assert_allclose(run_cdl(), run_numpy(), rtol=1e-3, atol=1e-4)
    contenders = {"cdl": run_cdl, "numpy": run_numpy}
    if torch is not None:
        tx = torch.from_numpy(x.copy()).requires_grad_()
        tg = torch.from_numpy(gamma.copy()).requires_grad_()
        tb = torch.from_numpy(beta.copy()).requires_grad_()
        rm, rv = torch.zeros(C), torch.ones(C)
        tdout = torch.from_numpy(dout.copy())

        def run_torch():
            tx.grad = tg.grad = tb.grad = None
            torch.nn.functional.batch_norm(tx, rm, rv, tg, tb, training=True, momentum=0.1,
                                           eps=bn.eps).backward(tdout)

        contenders["torch"] = run_torch
    med, first = _common.interleaved(contenders, repeat, warmup)
    row = {"op": "batchnorm fwd+bwd", "shape": "x".join(map(str, shape)), "dtype": "float32",
           "cdl ms": med["cdl"] * 1e3, "numpy ms": med["numpy"] * 1e3,
           "numpy/cdl": med["numpy"] / med["cdl"],
           "cdl GB/s": 5 * x.nbytes / med["cdl"] / 1e9,  # x read 3x, dout 2x, y and dx written
           "cdl first s": first["cdl"]}
    if "torch" in med:
        row.update({"torch ms": med["torch"] * 1e3, "torch/cdl": med["torch"] / med["cdl"]})
    return row


def bench_augment(shape, repeat, warmup):
    from cdl.data import augment as A
    rng = np.random.default_rng(0)
    x = rng.random(shape).astype(np.float32)
    t = rng.integers(0, 10, shape[0])
    steps = [A.HorizontalFlip(), A.Rotation(15), A.RandomResizedCrop(scale=(0.7, 1.0)),
             A.Cutout(max(2, shape[-1] // 4))]
    fused = A.Compose(steps)
    gen = {"fused": np.random.default_rng(1), "unfused": np.random.default_rng(1)}

    def run_unfused():
        xb, tb = x, t
        for s in steps:
            xb, tb = s(xb, tb, gen["unfused"])
        return xb

    med, first = _common.interleaved({"fused": lambda: fused(x, t, gen["fused"]),
                                      "unfused": run_unfused}, repeat, warmup)
    n = shape[0]
    return {"op": "flip+rot+crop+cutout", "shape": "x".join(map(str, shape)), "dtype": "float32",
            "fused ms": med["fused"] * 1e3, "fused img/s": n / med["fused"],
            "unfused img/s": n / med["unfused"], "unfused/fused": med["unfused"] / med["fused"],
            "fused first s": first["fused"]}


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
    threads = _common.set_threads(args.threads)
    torch = _common.torch_or_none()
    repeat, warmup = (min(args.repeat, 5), min(args.warmup, 1)) if args.quick else \
        (args.repeat, args.warmup)
    _common.print_machine()
    bn_shapes = BN_SHAPES[:1] + BN_SHAPES[3:4] if args.quick else BN_SHAPES
    bn_rows = [bench_batchnorm(s, repeat, warmup, torch) for s in bn_shapes]
    _common.table(bn_rows, ["op", "shape", "dtype", "cdl ms", "numpy ms", "torch ms",
                            "numpy/cdl", "torch/cdl", "cdl GB/s", "cdl first s"])
    print(f"threads={threads}; numpy/cdl and torch/cdl > 1 mean cdl is faster")
    aug_rows = [bench_augment(s, repeat, warmup) for s in AUG_SHAPES]
    _common.table(aug_rows, ["op", "shape", "dtype", "fused ms", "fused img/s", "unfused img/s",
                             "unfused/fused", "fused first s"])
    path = _common.save("norm", {"threads": threads, "repeat": repeat, "batchnorm": bn_rows,
                                 "augment": aug_rows}, args.json)
    print(f"wrote {path}")
    return bn_rows, aug_rows


if __name__ == "__main__":
    main()
