"""cdl.data.loader: DataLoader batches (order, seeds, drop_last, conversion, normalization,
memory-mapped input) and Trainer.fit on a DataLoader."""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.data import DataLoader, augment as A, channel_stats


def _data(rng, n=10, shape=(2, 3, 3), dtype=np.float32):
    x = rng.random((n, *shape)).astype(dtype)
    return x, np.arange(n) % 3


def test_every_sample_once_per_epoch_in_sorted_batches(rng):
    x, t = _data(rng, n=10)
    loader = DataLoader(x, t, batch_size=4, seed=0)
    assert len(loader) == 3 and loader.num_samples == 10
    seen = []
    for idx, xb, tb in loader.batches():
        assert (np.diff(idx) > 0).all()           # sorted within the batch
        np.testing.assert_array_equal(xb, x[idx])
        np.testing.assert_array_equal(tb, t[idx])
        assert xb.dtype == np.float32 and tb.dtype == np.int64
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(10))
    assert [len(xb) for xb, _ in loader] == [4, 4, 2]


def test_seed_reproduces_and_epochs_differ(rng):
    x, t = _data(rng, n=12)
    epochs = lambda loader: [[idx.tolist() for idx, _, _ in loader.batches()] for _ in range(2)]
    a, b = epochs(DataLoader(x, t, 4, seed=3)), epochs(DataLoader(x, t, 4, seed=3))
    assert a == b and a[0] != a[1]
    assert epochs(DataLoader(x, t, 4, seed=4)) != a
    plain = DataLoader(x, t, 5, shuffle=False)
    assert [idx.tolist() for idx, _, _ in plain.batches()] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9],
                                                              [10, 11]]


def test_drop_last(rng):
    x, t = _data(rng, n=10)
    loader = DataLoader(x, t, batch_size=4, drop_last=True, seed=1)
    sizes = [len(tb) for _, tb in loader]
    assert len(loader) == 2 and sizes == [4, 4]
    with pytest.raises(ValueError, match="leaves no batch"):
        DataLoader(x, t, batch_size=11, drop_last=True)


def test_per_channel_normalization_and_given_statistics(rng):
    x, t = _data(rng, n=20, shape=(3, 4, 4))
    x[:, 2] = 0.5                                  # a constant channel: centred, not divided by 0
    loader = DataLoader(x, t, batch_size=20, shuffle=False, normalize="per_channel")
    np.testing.assert_allclose(loader.mean, x.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(loader.std[:2], x[:, :2].std(axis=(0, 2, 3)), rtol=1e-5)
    assert loader.std[2] == 1.0
    (xb, _), = list(loader)
    np.testing.assert_allclose(xb.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(xb[:, :2].std(axis=(0, 2, 3)), 1, rtol=1e-5)
    given = DataLoader(x, t, batch_size=20, shuffle=False, normalize=(0.5, (1, 2, 4)))
    np.testing.assert_allclose(given.rows(0, 20)[0],
                               (x - 0.5) / np.array([1, 2, 4], np.float32)[:, None, None])
    for bad in ("per_image", (0, (1, 2)), (0, 0)):
        with pytest.raises(ValueError, match="normalize"):
            DataLoader(x, t, normalize=bad)


def test_channel_stats_in_chunks_match_numpy(rng):
    x = rng.normal(3, 2, (37, 2, 5)).astype(np.float32)
    mean, std = channel_stats(x, chunk_values=7)  # a row per chunk: many combinations
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axis=(0, 2)), rtol=1e-12)


def test_uint8_storage_becomes_float_per_batch(rng):
    x = rng.integers(0, 256, (6, 1, 2, 2), dtype=np.uint8)
    t = np.arange(6, dtype=np.uint8)
    for idx, xb, tb in DataLoader(x, t, batch_size=4, seed=0).batches():
        np.testing.assert_array_equal(xb, x[idx].astype(np.float32) / 255)
        assert xb.dtype == np.float32 and tb.dtype == np.int64
    loader = DataLoader(x, t, 6, normalize="per_channel", dtype=np.float64)
    np.testing.assert_allclose(loader.mean, [x.mean() / 255])
    assert loader.rows(0, 6)[0].dtype == np.float64


def test_memory_mapped_input_reads_batches(rng, tmp_path):
    x = rng.integers(0, 256, (50, 1, 4, 4), dtype=np.uint8)
    t = (np.arange(50) % 10).astype(np.int64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    tm = np.load(tmp_path / "t.npy", mmap_mode="r")
    on_disk = DataLoader(xm, tm, batch_size=16, seed=5, normalize="per_channel")
    in_memory = DataLoader(x, t, batch_size=16, seed=5, normalize="per_channel")
    assert isinstance(on_disk.x, np.memmap)       # kept mapped, never loaded whole
    for (xa, ta), (xb, tb) in zip(on_disk, in_memory):
        assert type(xa) is np.ndarray and not isinstance(xa, np.memmap)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)


class _Reads(np.ndarray):
    """An array that records how many rows each indexing reads."""
    rows = []

    def __getitem__(self, key):
        _Reads.rows.append(len(np.arange(len(self))[key]))
        return np.asarray(self)[key]


def test_an_epoch_reads_only_batch_sized_pieces(rng):
    x, t = _data(rng, n=50)
    spy = x.view(_Reads)
    _Reads.rows = []
    loader = DataLoader(spy, t, batch_size=16, seed=0)
    assert [len(xb) for xb, _ in loader] == [16, 16, 16, 2]
    assert _Reads.rows == [16, 16, 16, 2]


def test_augment_runs_before_normalization_with_the_loader_rng(rng):
    x, t = _data(rng, n=8, shape=(1, 4, 4))
    flip = A.HorizontalFlip(p=1.0)
    loader = DataLoader(x, t, batch_size=8, shuffle=False, augment=flip, normalize=(0.5, 0.25))
    (xb, _), = list(loader)
    np.testing.assert_allclose(xb, (x[..., ::-1] - 0.5) / 0.25, rtol=1e-6)
    np.testing.assert_allclose(loader.rows(0, 8)[0], (x - 0.5) / 0.25, rtol=1e-6)  # eval: none
    noisy = lambda s: [xb for xb, _ in DataLoader(x, t, 4, seed=s, augment=A.GaussianNoise(0.1))]
    for a, b in zip(noisy(1), noisy(1)):
        np.testing.assert_array_equal(a, b)


def test_like_shares_the_training_statistics(rng):
    x, t = _data(rng, n=10)
    train = DataLoader(x, t, 4, normalize="per_channel", augment=A.GaussianNoise(1.0))
    val = train.like(x[:3] + 1, t[:3])
    assert not val.shuffle and val.augment is None
    np.testing.assert_array_equal(val.mean, train.mean)
    np.testing.assert_allclose(val.rows(0, 3)[0], train.rows(0, 3)[0] + 1 / train.std.astype(
        np.float32)[:, None, None], rtol=1e-5)


@pytest.mark.parametrize("make, match", [
    (lambda x, t: DataLoader(x.tolist(), t), "must be a NumPy array"),
    (lambda x, t: DataLoader(x.astype(np.int32), t), "uint8 .* or float"),
    (lambda x, t: DataLoader(x[:, 0, 0, 0], t), r"non-empty \(N, \.\.\.\)"),
    (lambda x, t: DataLoader(x, t[:3]), "for the N = 4 samples"),
    (lambda x, t: DataLoader(x, t.astype(bool)), "integer labels or float targets"),
    (lambda x, t: DataLoader(x, t, batch_size=0), "batch_size must be a positive int"),
    (lambda x, t: DataLoader(x, t, augment="flip"), "augment must be callable"),
    (lambda x, t: DataLoader(x, t, dtype=np.float16), "float32 or float64"),
    (lambda x, t: DataLoader(x * np.nan, t, normalize="per_channel"), "NaN or Inf"),
])
def test_bad_arguments(rng, make, match):
    x, t = _data(rng, n=4)
    with pytest.raises(ValueError, match=match):
        make(x, t)


# -- Trainer -------------------------------------------------------------------------------
def _net(d, k, seed=0):
    return cdl.Sequential([L.Flatten(), L.Affine(d, 16, rng=seed), L.ReLU(),
                           L.Affine(16, k, rng=seed)], loss=L.SoftmaxCrossEntropy())


def _blobs(rng, n=60):
    t = np.arange(n) % 3
    x = (rng.normal(0, 0.3, (n, 1, 2, 2)) + t[:, None, None, None]).astype(np.float32)
    return x, t


def test_trainer_learns_from_a_loader_with_history(rng):
    x, t = _blobs(rng)
    xv, tv = _blobs(rng, 30)
    trainer = cdl.Trainer(_net(4, 3), cdl.optim.Adam(lr=0.05), epochs=8, seed=0, verbose=False,
                          eval_samples=40, eval_batch_size=16)
    loader = DataLoader(x, t, batch_size=10, normalize="per_channel")
    history = trainer.fit(loader, validation_data=(xv, tv))
    assert len(history["loss"]) == 8 and history["loss"][-1] < history["loss"][0]
    assert history["train_acc"][-1] > 0.9 and history["val_acc"][-1] > 0.9
    # validation arrays got the loader's normalization: the same numbers by hand
    assert history["val_acc"][-1] == trainer.model.accuracy(loader.like(xv, tv).rows(0, 30)[0], tv)


def test_trainer_seed_drives_a_seedless_loader(rng):
    x, t = _blobs(rng, 30)
    def run(trainer_seed, loader_seed=None):
        net = _net(4, 3)
        cdl.Trainer(net, cdl.optim.SGD(lr=0.1), epochs=2, seed=trainer_seed, verbose=False).fit(
            DataLoader(x, t, batch_size=7, seed=loader_seed))
        return net.params["1.W"].copy()
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))
    np.testing.assert_array_equal(run(0, loader_seed=9), run(1, loader_seed=9))


def test_loader_gives_the_array_path_its_batches_for_in_order_training(rng):
    """shuffle=False and one batch: the loader and the array path train the same steps."""
    x, t = _blobs(rng, 20)
    a, b = _net(4, 3), _net(4, 3)
    cdl.Trainer(a, cdl.optim.SGD(lr=0.1), batch_size=20, epochs=3, seed=0, verbose=False).fit(x, t)
    cdl.Trainer(b, cdl.optim.SGD(lr=0.1), epochs=3, seed=0, verbose=False).fit(
        DataLoader(x, t, batch_size=20, shuffle=False))
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-6)


def test_trainer_with_a_validation_loader_and_bad_calls(rng):
    x, t = _blobs(rng, 20)
    trainer = cdl.Trainer(_net(4, 3), cdl.optim.SGD(lr=0.1), epochs=1, seed=0, verbose=False)
    h = trainer.fit(x, t, validation_data=DataLoader(x, t, batch_size=6, shuffle=False))
    assert 0 <= h["val_acc"][0] <= 1 and np.isfinite(h["val_loss"][0])
    assert h["val_acc"][0] == trainer.model.accuracy(x, t)
    with pytest.raises(ValueError, match="carries its own targets"):
        trainer.fit(DataLoader(x, t), t)
    with pytest.raises(ValueError, match="targets t missing"):
        trainer.fit(x)
