"""MaxPool2D / AvgPool2D forward + backward: cdl vs the book's NumPy code vs PyTorch CPU.

    python bench/pool.py [--repeat 10] [--warmup 2] [--threads 2] [--quick]

Contenders, interleaved in one process with the same thread count: cdl's
pooling layers, the book's Pooling layer (im2col, max/argmax over each
window row, col2im for backward; average pooling the same way with mean;
in bench/_twins.py) and torch.nn.functional.max_pool2d / avg_pool2d with
autograd. One call is a forward and a backward with a fixed dout.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (imports torch, if present, before cdl: see _common)

import _tables as B  # noqa: E402


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
    threads = _common.set_threads(args.threads)
    repeat, warmup = (min(args.repeat, 5), min(args.warmup, 1)) if args.quick else \
        (args.repeat, args.warmup)
    _common.print_machine()
    rows = B.pool_rows(B.POOL_CASES, repeat, warmup, _common.torch_or_none())
    summary = B.summary(rows, "op")
    _common.table(rows + [summary], B.POOL_COLUMNS + ["cdl first s"])
    print(f"threads={threads}; median of {repeat}; cdl/torch < 1: cdl faster; "
          "GB/s counts x, y, dout and dx once each")
    path = _common.save("pool", {"threads": threads, "repeat": repeat, "rows": rows,
                                 "summary": summary}, args.json)
    print(f"wrote {path}")
    return rows, summary


if __name__ == "__main__":
    main()
