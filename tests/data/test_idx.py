import gzip
import struct

import numpy as np
import pytest

from cdl.data import fashion_mnist_available, load_fashion_mnist, read_idx


def _write(path, arr, code=0x08, shape=None, extra=b"", gz=False):
    shape = arr.shape if shape is None else shape
    blob = b"\0\0" + bytes([code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) \
        + arr.tobytes() + extra
    (gzip.open if gz else open)(path, "wb").write(blob)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_roundtrip(tmp_path, gz):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(_write(tmp_path / ("a.gz" if gz else "a"), a, gz=gz)), a)


@pytest.mark.parametrize("kw, match", [
    ({"shape": (5, 3, 4)}, "truncated"),
    ({"extra": b"\x01"}, "trailing"),
    ({"code": 0x42}, "not an IDX"),
    ({"shape": (60000, 60000, 60000)}, "too large"),
])
def test_forged_headers(tmp_path, kw, match):
    a = np.zeros((2, 3, 4), np.uint8)
    with pytest.raises(ValueError, match=match):
        read_idx(_write(tmp_path / "bad", a, **kw))


def test_truncated_gzip(tmp_path):
    p = _write(tmp_path / "a.gz", np.zeros((50, 28, 28), np.uint8), gz=True)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        read_idx(p)


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("cdl.data.idx.DEBIAN_FASHION", str(tmp_path / "none"))
    monkeypatch.delenv("CDL_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(path=str(tmp_path))


def test_loads_a_small_fake_set_from_cdl_data(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 4)):
        _write(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), gz=True)
        _write(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8), gz=True)
    monkeypatch.setenv("CDL_DATA", str(tmp_path))
    (x, t), (xt, tt) = load_fashion_mnist()
    assert x.shape == (6, 1, 28, 28) and xt.shape == (4, 1, 28, 28) and x.max() <= 1
    assert t.dtype == np.int64


@pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_if_installed():
    (x, t), (xt, tt) = load_fashion_mnist()
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert np.bincount(t).tolist() == [6000] * 10
