"""cdl.distributed.sync: AllReduceOptimizer, GradSync's buckets and sync_batchnorm; on one
rank (no MPI needed, the single-process path unchanged) and on two under mpiexec."""
import types

import numpy as np
import pytest

from cdl import optim
from cdl.distributed import AllReduceOptimizer
from cdl.distributed.sync import _views_of_one_buffer, buckets
from cdl import _flatgrad
from cdl.layers import Affine, ReLU, SoftmaxCrossEntropy
from cdl.model import Sequential
from cdl.train import Trainer

from ._mpi import compare, keys, needs_mpi, run

ONE = types.SimpleNamespace(rank=0, size=1, mpi=None)  # a communicator of one rank


def _net():
    rng = np.random.default_rng(0)
    return Sequential([Affine(6, 8, rng=rng), ReLU(), Affine(8, 8, rng=rng), ReLU(),
                       Affine(8, 3, rng=rng)], loss=SoftmaxCrossEntropy()).astype(np.float64)


def _data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((20, 6)), rng.integers(0, 3, 20)


@pytest.mark.parametrize("how", ["optimizer", "comm"])
def test_one_rank_trains_bit_for_bit_as_without(how):
    x, t = _data()
    a, b = _net(), _net()
    opt = optim.Adam(lr=1e-2)
    kwargs = {"comm": ONE} if how == "comm" else {}
    wrapped = AllReduceOptimizer(opt, ONE) if how == "optimizer" else opt
    ha = Trainer(a, wrapped, batch_size=6, epochs=2, seed=0, verbose=False, **kwargs).fit(x, t)
    hb = Trainer(b, optim.Adam(lr=1e-2), batch_size=6, epochs=2, seed=0,
                 verbose=False).fit(x, t)
    ha.pop("time"), hb.pop("time")
    assert ha == hb
    for k, p in b.params.items():
        np.testing.assert_array_equal(a.params[k], p)


def test_wrapper_delegates_lr_and_state():
    opt = AllReduceOptimizer(optim.Momentum(lr=0.1), ONE)
    opt.lr = 0.05  # as schedules set it
    assert opt.optimizer.lr == 0.05 and opt.lr == 0.05
    assert opt.state_dict()["type"] == "Momentum"  # checkpoints hold the plain optimizer
    with pytest.raises(ValueError, match="compression"):
        AllReduceOptimizer(optim.SGD(), ONE, compression="int8")


def test_views_of_one_buffer_found_only_when_back_to_back():
    net = _net()
    x, t = _data()
    net.loss(x, t)
    net.backward()
    assert _views_of_one_buffer(net.grads) is net.grad_buffer
    assert _views_of_one_buffer({"a": np.zeros(3), "b": np.zeros(2)}) is None
    grads = dict(net.grads)
    grads.pop(next(iter(grads)))  # a gap at the front
    assert _views_of_one_buffer(grads) is None


def test_buckets_cover_the_buffer_from_the_last_layer_down():
    net = _net()
    layout = _flatgrad.layout(net)
    itemsize = layout.buffers[0].dtype.itemsize
    bks = buckets(layout, bucket_bytes=80 * itemsize)
    spans = sorted((b.start, b.stop) for b in bks)
    assert spans[0][0] == 0 and spans[-1][1] == layout.buffers[0].size
    assert all(s1 == s0 for (_, s0), (s1, _) in zip(spans, spans[1:]))
    for b in bks:  # complete once backward has passed its first layer
        tops = {e.top for e in layout.entries if b.start <= e.start < b.stop}
        assert b.first == min(tops)


@needs_mpi
def test_sync_batchnorm_equals_one_process_batchnorm(tmp_path):
    out = tmp_path / "bn.npz"
    run("equivalence", out, 31, 4, 2, 1)
    res = np.load(out)
    compare(res, keys(res), rtol=1e-9, atol=1e-11)
    for k in (f[len("buf/"):] for f in res.files if f.startswith("buf/")):
        np.testing.assert_allclose(res[f"buf/{k}"], res[f"refbuf/{k}"], rtol=1e-9, err_msg=k)


@needs_mpi
def test_float16_compression_stays_close(tmp_path):
    out = tmp_path / "f16.npz"
    run("equivalence", out, 32, 4, 1, 0, "float16", 1 << 20)
    res = np.load(out)
    compare(res, keys(res), rtol=2e-2, atol=2e-3)


@needs_mpi
def test_allreduce_optimizer_in_a_loop_of_ones_own(tmp_path):
    out = tmp_path / "manual.npz"
    run("manual", out, 3)
    res = np.load(out)
    compare(res, keys(res), rtol=1e-10, atol=1e-12)
