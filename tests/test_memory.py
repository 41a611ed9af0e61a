"""Memory: an epoch of DeepConvNet allocates nothing that outlives its batch.

After the first batches (buffers sized, kernels compiled, optimizer state created) the
memory in use is flat: measured by tracemalloc (NumPy reports its array buffers to it)
and by the resident set (/proc/self/statm), at the end of every batch.

Two models training in two threads of one process give the same weights as each
trained alone: tests/test_embedding.py::test_models_trained_in_two_threads_match_trained_alone
(two Trainers with Adam and a seeded Dropout, plus a third thread using NumPy's BLAS).
"""
import os
import tracemalloc

import numpy as np
import pytest

from cdl import Callback, Trainer, optim
from cdl.models import DeepConvNet


def _rss():
    """Resident set size in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


class _Probe(Callback):
    """Traced and resident memory at the end of every batch."""

    def __init__(self):
        self.traced, self.rss = [], []

    def on_batch_end(self, trainer, batch, logs):
        self.traced.append(tracemalloc.get_traced_memory()[0])
        self.rss.append(_rss())


@pytest.mark.slow
def test_an_epoch_of_deep_conv_net_does_not_grow_memory():
    rng = np.random.default_rng(0)
    x = rng.random((600, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 600)
    net = DeepConvNet(rng=0)  # the book's: 16-16-32-32-64-64 channels, 28x28 input
    probe = _Probe()
    trainer = Trainer(net, optim.Adam(lr=1e-3), batch_size=50, epochs=1, seed=0,
                      callbacks=[probe], verbose=False, progress=False)
    tracemalloc.start()
    try:
        trainer.fit(x, t)
    finally:
        tracemalloc.stop()
    assert len(probe.traced) == 12
    settled = probe.traced[3]
    # a leak of one batch's input (50x1x28x28 float32) per batch would add 150 KB a batch;
    # the last 8 batches may not add 1 MB in all
    growth = max(probe.traced[4:]) - settled
    assert growth < 1 << 20, f"traced memory grew {growth} bytes after batch 4: {probe.traced}"
    if probe.rss[3] is not None:
        grown = max(probe.rss[4:]) - probe.rss[3]
        assert grown < 32 << 20, f"RSS grew {grown >> 20} MiB after batch 4: {probe.rss}"


@pytest.mark.slow
def test_the_probe_sees_a_leak():
    """The measurement can fail: a callback keeping 256 KB a batch shows up in it."""
    rng = np.random.default_rng(0)
    x = rng.random((300, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 300)
    net = DeepConvNet(channels=(8, 8, 16), rng=0)
    kept = []

    class Leak(_Probe):
        def on_batch_end(self, trainer, batch, logs):
            kept.append(np.ones(1 << 16, np.float32))  # 256 KB a batch
            super().on_batch_end(trainer, batch, logs)

    probe = Leak()
    tracemalloc.start()
    try:
        Trainer(net, optim.Adam(lr=1e-3), batch_size=50, epochs=1, seed=0, callbacks=[probe],
                verbose=False, progress=False).fit(x, t)
    finally:
        tracemalloc.stop()
    assert probe.traced[-1] - probe.traced[1] >= 4 * (1 << 18)
