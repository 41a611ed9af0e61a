"""Conv2D forward + backward (dx, dW, db): cdl vs the book's NumPy code vs PyTorch CPU.

    python bench/conv.py [--repeat 10] [--warmup 2] [--threads 2] [--quick] [--algos]

Three contenders, timed interleaved in one process with the same thread
count: cdl's Conv2D layer, a book-style NumPy reference written below (im2col
with a Python loop over kernel positions, one GEMM, col2im, exactly as in the
book's common/layers.py), and torch.nn.functional.conv2d with autograd when
torch is installed. Each call is one forward and one backward with a fixed
dout. GFLOP/s counts 3 * 2*N*OH*OW*F*C*KH*KW (forward, dx and dW GEMMs).

--algos adds one contender per algorithm of cdl.kernels.conv (forced, for
every shape, plus a few more shapes around the heuristic's threshold): the
evidence behind choose_algorithm.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (imports torch, if present, before cdl: see _common)

import numpy as np  # noqa: E402

SHAPES = [  # N, C, H, W, F, K, stride, pad: the five shapes of issue 6
    (100, 1, 28, 28, 16, 3, 1, 1),
    (100, 16, 14, 14, 32, 3, 1, 1),
    (64, 64, 16, 16, 64, 3, 1, 1),
    (32, 3, 32, 32, 64, 5, 2, 2),
    (128, 128, 8, 8, 256, 1, 1, 0),
]
EXTRA = [  # more 1x1 shapes, where both algorithms apply (with --algos)
    (64, 256, 14, 14, 64, 1, 1, 0),
    (64, 64, 16, 16, 256, 1, 1, 0),
    (100, 64, 8, 8, 64, 1, 1, 0),
]


# --- the book's code (common/util.py and common/layers.py), float32 throughout ---

def book_im2col(x, kh, kw, stride, pad):
    N, C, H, W = x.shape
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, kh, kw, oh, ow), dtype=x.dtype)
    for y in range(kh):
        y_max = y + stride * oh
        for x_ in range(kw):
            x_max = x_ + stride * ow
            col[:, :, y, x_, :, :] = img[:, :, y:y_max:stride, x_:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * oh * ow, -1)


def book_col2im(col, x_shape, kh, kw, stride, pad):
    N, C, H, W = x_shape
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    col = col.reshape(N, oh, ow, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(kh):
        y_max = y + stride * oh
        for x_ in range(kw):
            x_max = x_ + stride * ow
            img[:, :, y:y_max:stride, x_:x_max:stride] += col[:, :, y, x_, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]


def book_conv(x, W, b, dout, stride, pad):
    """Forward then backward of the book's Convolution layer; returns (y, dx, dW, db)."""
    FN, C, FH, FW = W.shape
    N, _, H, Wd = x.shape
    oh, ow = (H + 2 * pad - FH) // stride + 1, (Wd + 2 * pad - FW) // stride + 1
    col = book_im2col(x, FH, FW, stride, pad)
    col_W = W.reshape(FN, -1).T
    y = (col @ col_W + b).reshape(N, oh, ow, -1).transpose(0, 3, 1, 2)
    d = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
    db = d.sum(axis=0)
    dW = (col.T @ d).transpose(1, 0).reshape(FN, C, FH, FW)
    dx = book_col2im(d @ col_W.T, x.shape, FH, FW, stride, pad)
    return y, dx, dW, db


def _algos(K, s, p):
    """The algorithms of cdl.kernels.conv that apply to this geometry."""
    from cdl.kernels import conv as ck
    return [a for a in ck.ALGORITHMS if a == "gemm" or (K, s, p) == (1, 1, 0)]


def gflop(N, C, H, W, F, K, s, p):
    oh, ow = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    return 3 * 2 * N * oh * ow * F * C * K * K / 1e9


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--algos", action="store_true", help="also time each algorithm, forced")
    args = p.parse_args(argv)
    threads = _common.set_threads(args.threads)
    from cdl import layers as L
    from cdl.kernels import conv as ck
    torch = _common.torch_or_none()
    rows = []
    shapes = SHAPES + (EXTRA if args.algos else [])
    repeat, warmup = (min(args.repeat, 5), min(args.warmup, 1)) if args.quick else \
        (args.repeat, args.warmup)
    _common.print_machine()
    for (N, C, H, W, F, K, s, p) in shapes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        layer = L.Conv2D(C, F, K, stride=s, pad=p, rng=rng)
        layer.params["b"][:] = rng.standard_normal(F)
        Wt, b = layer.params["W"], layer.params["b"]
        oh, ow = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
        dout = rng.standard_normal((N, F, oh, ow)).astype(np.float32)

        def run_cdl():
            layer.forward(x)
            return layer.backward(dout)

        contenders = {"cdl": run_cdl,
                      "book": lambda: book_conv(x, Wt, b, dout, s, p)}
        if args.algos:
            for algo in _algos(K, s, p):
                contenders[algo] = (lambda a: lambda: (
                    ck.conv2d_forward(x, Wt, b, (s, s), (p, p), algo=a),
                    ck.conv2d_backward(dout, x, Wt, (s, s), (p, p), True, algo=a)))(algo)
        if torch is not None:
            tx = torch.from_numpy(x.copy()).requires_grad_()
            tw = torch.from_numpy(Wt.copy()).requires_grad_()
            tb = torch.from_numpy(b.copy()).requires_grad_()
            tdout = torch.from_numpy(dout.copy())

            def run_torch():
                tx.grad = tw.grad = tb.grad = None
                torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p).backward(tdout)

            contenders["torch"] = run_torch
        med, first = _common.interleaved(contenders, repeat, warmup)
        g = gflop(N, C, H, W, F, K, s, p)
        row = {"shape": f"N{N} {C}->{F} {H}x{W} k{K} s{s} p{p}",
               "cdl ms": med["cdl"] * 1e3, "book ms": med["book"] * 1e3,
               "book/cdl": med["book"] / med["cdl"], "cdl GFLOP/s": g / med["cdl"],
               "cdl first s": first["cdl"],
               "algo": ck.choose_algorithm(x.shape, Wt.shape, (s, s), (p, p))}
        for algo in _algos(K, s, p) if args.algos else ():
            row[f"{algo} ms"] = med[algo] * 1e3
        if "torch" in med:
            row.update({"torch ms": med["torch"] * 1e3, "cdl/torch": med["cdl"] / med["torch"],
                        "torch GFLOP/s": g / med["torch"]})
        rows.append(row)
    main_rows = rows[:len(SHAPES)]  # the geomean is over the five shapes
    summary = {"shape": "geomean",
               "book/cdl": _common.geomean([r["book/cdl"] for r in main_rows])}
    if torch is not None:
        summary["cdl/torch"] = _common.geomean([r["cdl/torch"] for r in main_rows])
        summary["worst cdl/torch"] = max(r["cdl/torch"] for r in main_rows)
    cols = ["shape", "algo", "cdl ms", "torch ms", "book ms", "cdl/torch", "book/cdl",
            "cdl GFLOP/s", "torch GFLOP/s", "cdl first s"]
    if args.algos:
        cols += [f"{a} ms" for a in ck.ALGORITHMS]
    _common.table(rows + [summary], cols)
    print(f"threads={threads}; cdl/torch < 1 means cdl is faster; book/cdl > 1 means cdl is faster")
    path = _common.save("conv", {"threads": threads, "repeat": repeat, "rows": rows,
                                 "summary": summary}, args.json)
    print(f"wrote {path}")
    return rows, summary


if __name__ == "__main__":
    main()
