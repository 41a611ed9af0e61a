"""Mini-batches as row indices, one rank's shard of them in data-parallel training.

``Trainer`` cuts every epoch with a ``BatchSampler`` (its own generator
draws the order), and ``cdl.distributed`` gives each rank its shard of every
global batch from the same draw.
"""
import numpy as np

from cdl._checks import check_int, positive_int


class BatchSampler:
    """One epoch's mini-batches as row indices, optionally one rank's shard of them.

    ``epoch(rng)`` draws an order of the n rows (``rng.permutation(n)``, one draw per
    epoch; ``shuffle=False``: 0..n-1) and cuts it into global batches of
    ``batch_size * size`` consecutive rows; rank ``rank`` of ``size`` gets its
    contiguous shard of each (``batch_size`` rows; the last, smaller global batch is
    split as evenly as possible, or left out with ``drop_last``, or when it has fewer
    rows than there are ranks). It returns a list of ``(idx, n_global)``: the rows of
    this rank, and of the whole global batch (its share of the gradient average). With
    the same rng state on every rank, the shards of an epoch are disjoint and cover the
    rows; with size 1 the batches are those of a single process.
    """

    def __init__(self, n, batch_size, rank=0, size=1, shuffle=True, drop_last=False):
        self.n, self.batch_size = int(n), positive_int("BatchSampler", "batch_size", batch_size)
        self.size = positive_int("BatchSampler", "size", size)
        self.rank = check_int("BatchSampler", "rank", rank, minimum=0)
        if self.rank >= self.size:
            raise ValueError(f"BatchSampler: rank {rank} of {size} ranks")
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)

    def __len__(self):
        g = self.batch_size * self.size
        full, rest = divmod(self.n, g)
        return full + (0 < rest and not self.drop_last and rest >= self.size)

    def epoch(self, rng):
        """This rank's [(idx, n_global), ...] for one epoch, the order drawn from rng."""
        return self.split(rng.permutation(self.n) if self.shuffle else np.arange(self.n))

    def split(self, order):
        """The (idx, n_global) of this rank for an order of the rows."""
        g, r, size = self.batch_size * self.size, self.rank, self.size
        out = []
        for start in range(0, len(order), g):
            rows = order[start:start + g]
            m = len(rows)
            if m < g and (self.drop_last or m < size):
                break
            lo, hi = (r * self.batch_size, (r + 1) * self.batch_size) if m == g \
                else (m * r // size, m * (r + 1) // size)
            out.append((rows[lo:hi], m))
        return out


__all__ = ["BatchSampler"]
