"""cdl.sampler: BatchSampler's batches, and each rank's shard of them."""
import numpy as np
import pytest

from cdl.sampler import BatchSampler


def test_one_rank_gives_the_single_process_batches():
    rng = np.random.default_rng(3)
    order = np.random.default_rng(3).permutation(23)
    batches = BatchSampler(23, 5).epoch(rng)
    assert len(batches) == len(BatchSampler(23, 5)) == 5
    for b, (idx, n) in enumerate(batches):
        np.testing.assert_array_equal(idx, order[b * 5:(b + 1) * 5])
        assert n == len(idx)


@pytest.mark.parametrize("n, size", [(24, 2), (23, 2), (25, 3), (31, 4), (9, 4)])
def test_shards_are_disjoint_cover_the_epoch_and_split_each_global_batch(n, size):
    batch = 3
    shards = [BatchSampler(n, batch, r, size).epoch(np.random.default_rng(0))
              for r in range(size)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(BatchSampler(n, 3, 0, size))
    order = np.random.default_rng(0).permutation(n)
    rows = []
    for b in range(len(shards[0])):
        together = np.concatenate([s[b][0] for s in shards])
        g = len(together)
        assert all(s[b][1] == g for s in shards)  # each knows the global batch's size
        np.testing.assert_array_equal(together, order[b * batch * size:b * batch * size + g])
        assert max(len(s[b][0]) for s in shards) - min(len(s[b][0]) for s in shards) <= 1
        rows += together.tolist()
    left = n % (batch * size)
    dropped = left if 0 < left < size else 0  # a last global batch smaller than the ranks
    assert len(rows) == len(set(rows)) == n - dropped


def test_bad_rank():
    with pytest.raises(ValueError, match="rank 2 of 2"):
        BatchSampler(10, 2, rank=2, size=2)


def test_the_trainer_module_still_names_it():
    from cdl import train
    assert train.BatchSampler is BatchSampler
