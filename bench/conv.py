"""Conv2D forward + backward (dx, dW, db): cdl vs the book's NumPy code vs PyTorch CPU.

    python bench/conv.py [--repeat 10] [--warmup 2] [--threads 2] [--quick] [--algos]
                         [--with-dx]

Three contenders, timed interleaved in one process with the same thread
count: cdl's Conv2D layer, the book's Convolution layer (im2col with a
Python loop over kernel positions, one GEMM, col2im; bench/_twins.py has it
as the book writes it) and torch.nn.functional.conv2d with autograd when
torch is installed. Each call is one forward and one backward with a fixed
dout. GFLOP/s counts 3 * 2*N*OH*OW*F*C*KH*KW (forward, dx and dW).

--algos adds one contender per algorithm of cdl.kernels.conv that applies
(forced), and three more 1x1 shapes: the evidence behind choose_algorithm.

--with-dx also times cdl's three calls apart: the forward, the backward
without the input gradient (dW, db: a first layer's) and with it (as inside
a network); each is chosen and tuned on its own (cdl.kernels.tuner), and the
"algo" column lists forward/backward/backward-without-dx where they differ.

Below the table: the algorithm each shape got per direction, and why.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import _tables as B  # noqa: E402
from cdl.kernels.conv import ALGORITHMS  # noqa: E402

SHAPES = B.CONV_SHAPES  # the five shapes of issue 6
EXTRA = [  # with --algos: few-channel shapes ("direct" vs "gemm") and 1x1 ("pointwise" too)
    (100, 1, 28, 28, 32, 5, 1, 2),
    (64, 3, 32, 32, 32, 3, 1, 1),
    (64, 3, 32, 32, 16, 3, 1, 1),
    (100, 1, 28, 28, 16, 3, 2, 0),
    (32, 3, 64, 64, 32, 7, 2, 3),
    (100, 8, 14, 14, 16, 3, 1, 1),
    (64, 256, 14, 14, 64, 1, 1, 0),
    (64, 64, 16, 16, 256, 1, 1, 0),
    (100, 64, 8, 8, 64, 1, 1, 0),
]


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--algos", action="store_true", help="also time each algorithm, forced")
    p.add_argument("--with-dx", action="store_true",
                   help="also time cdl's forward, backward without dx and backward with dx "
                        "apart")
    args = p.parse_args(argv)
    threads = _common.set_threads(args.threads)
    repeat, warmup = (min(args.repeat, 5), min(args.warmup, 1)) if args.quick else \
        (args.repeat, args.warmup)
    _common.print_machine()
    rows = B.conv_rows(SHAPES + (EXTRA if args.algos else []), repeat, warmup,
                       _common.torch_or_none(), algos=args.algos, with_dx=args.with_dx)
    summary = B.summary(rows[:len(SHAPES)])  # the geomean is over the five shapes
    cols = B.CONV_COLUMNS + ["cdl first s"] + (
        ["fwd ms", "bwd ms", "bwd+dx ms"] if args.with_dx else []) + (
        [f"{a} ms" for a in ALGORITHMS] if args.algos else [])
    _common.table(rows + [summary], cols)
    print(f"threads={threads}; median of {repeat}; cdl/torch < 1: cdl faster than torch; "
          "book/cdl > 1: cdl faster than the book's code; geomean over the first five shapes"
          + ("; fwd, bwd (dW, db) and bwd+dx (dx, dW, db): cdl's calls timed apart"
             if args.with_dx else ""))
    print(B.WHY_HEADER)
    for row in rows:
        for line in B.decision_lines(row["shape"], row["decisions"]):
            print("  " + line)
    path = _common.save("conv", {"threads": threads, "repeat": repeat, "rows": rows,
                                 "summary": summary}, args.json)
    print(f"wrote {path}")
    return rows, summary


if __name__ == "__main__":
    main()
