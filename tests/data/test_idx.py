import gzip
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdl.data import (fashion_mnist_available, load_fashion_mnist, load_mnist, mnist_available,
                      read_idx)

from .._fuzz import damaged


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


# -- MNIST: the same reader and search as Fashion-MNIST --------------------------------
def _fake_set(folder, gz=False, n=(6, 4), **broken):
    """The four IDX files of a tiny MNIST-like set in folder; broken: file stem -> kwargs."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "t10k"), n):
        for kind, arr in (("images-idx3", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)),
                          ("labels-idx1", (np.arange(count) % 10).astype(np.uint8))):
            stem = f"{split}-{kind}-ubyte"
            _write(folder / (stem + (".gz" if gz else "")), arr, gz=gz, **broken.get(stem, {}))
    return folder


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No $CDL_DATA and no system folders: only what a test writes is found."""
    monkeypatch.delenv("CDL_DATA", raising=False)
    monkeypatch.setattr("cdl.data.idx.DEBIAN_MNIST", str(tmp_path / "no-mnist"))
    monkeypatch.setattr("cdl.data.idx.DEBIAN_FASHION", str(tmp_path / "no-fashion"))
    return tmp_path


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_a_path(nowhere, gz):
    folder = _fake_set(nowhere / "m", gz=gz)
    (x, t), (xt, tt) = load_mnist(path=str(folder))
    assert x.shape == (6, 1, 28, 28) and xt.shape == (4, 1, 28, 28)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    raw = read_idx(folder / ("train-images-idx3-ubyte" + (".gz" if gz else "")))
    np.testing.assert_array_equal(x[:, 0] * 255, raw.astype(np.float32))
    assert t.dtype == np.int64 and t.tolist() == [0, 1, 2, 3, 4, 5] and tt.tolist() == [0, 1, 2, 3]


def test_mnist_search_order_path_then_cdl_data_subfolder_then_system(nowhere, monkeypatch):
    _fake_set(nowhere / "env" / "mnist", n=(3, 2))
    _fake_set(nowhere / "env" / "fashion-mnist", n=(5, 2))
    monkeypatch.setenv("CDL_DATA", str(nowhere / "env"))
    assert len(load_mnist()[0][0]) == 3            # $CDL_DATA/mnist, not the Fashion files
    assert len(load_fashion_mnist()[0][0]) == 5    # $CDL_DATA/fashion-mnist
    assert len(load_mnist(path=str(_fake_set(nowhere / "p", n=(7, 2))))[0][0]) == 7
    monkeypatch.delenv("CDL_DATA")
    _fake_set(nowhere / "no-mnist", n=(2, 2))
    assert mnist_available() and len(load_mnist()[0][0]) == 2


def test_missing_mnist_says_where_to_put_which_files(nowhere):
    (nowhere / "half").mkdir()
    (nowhere / "half" / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(path=str(nowhere / "half"))
    msg = str(e.value)
    assert "\n" not in msg and "MNIST IDX files not found" in msg
    assert "lacks train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz]" in msg
    assert "t10k-labels-idx1-ubyte[.gz]" in msg and "CDL_DATA/mnist" in msg
    assert not mnist_available(str(nowhere / "half"))


@pytest.mark.parametrize("stem, broken, match", [
    ("train-images-idx3-ubyte", {"shape": (7, 28, 28)}, "train-images-idx3-ubyte: truncated"),
    ("t10k-labels-idx1-ubyte", {"code": 0x07}, "t10k-labels-idx1-ubyte: not an IDX file"),
    ("train-labels-idx1-ubyte", {"shape": (5,), "extra": b""}, "trailing bytes"),
    ("t10k-images-idx3-ubyte", {"code": 0x0C, "shape": (1, 28, 28)}, "expected uint8 images"),
    ("train-labels-idx1-ubyte", {"shape": (3, 2)}, "expected uint8 labels"),
])
def test_bad_mnist_files_name_the_file(nowhere, stem, broken, match):
    folder = _fake_set(nowhere / "m", **{stem: broken})
    with pytest.raises(ValueError, match=match) as e:
        load_mnist(path=str(folder))
    assert stem in str(e.value)


def test_mnist_images_and_labels_must_agree(nowhere):
    folder = _fake_set(nowhere / "m")
    _write(folder / "train-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="6 train images and 5 labels"):
        load_mnist(path=str(folder))
    _write(folder / "train-labels-idx1-ubyte", np.full(6, 10, np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: labels outside 0\.\.9"):
        load_mnist(path=str(folder))


@pytest.mark.skipif(not mnist_available(), reason="MNIST not found ($CDL_DATA or "
                    "/usr/share/datasets/mnist)")
def test_real_mnist_if_present():
    (x, t), (xt, tt) = load_mnist()
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert np.bincount(tt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# -- forged sizes and fuzz ---------------------------------------------------------------
def test_header_sizes_are_multiplied_in_python_ints(tmp_path):
    """65536**4 is 2**64: in int64 (np.prod) it wrapped to 0 bytes and passed the size check."""
    with pytest.raises(ValueError, match=r"bad: header claims shape \(65536, 65536, 65536, "
                                         r"65536\) \(18446744073709551616 bytes\), too large"):
        read_idx(_write(tmp_path / "bad", np.zeros(0, np.uint8), shape=(65536,) * 4))


@pytest.mark.parametrize("gz", [False, True])
def test_a_forged_size_costs_no_memory(tmp_path, gz):
    """A 100-byte file claiming 2 GB is refused as truncated, reading only what is there
    (f.read(n) would allocate the n bytes first)."""
    import tracemalloc
    p = _write(tmp_path / ("f.gz" if gz else "f"), np.zeros(100, np.uint8),
               shape=(32768, 65535), gz=gz)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="truncated: header shape"):
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


@pytest.fixture(scope="module")
def idx_blobs():
    a = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    raw = b"\0\0\x08\x03" + struct.pack(">3I", *a.shape) + a.tobytes()
    return raw, a


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), gz=st.booleans())
def test_damaged_files_are_a_value_error_or_read_as_their_header_says(idx_blobs, tmp_path,
                                                                      data, gz):
    raw, a = idx_blobs
    blob = damaged(data, raw)
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    try:
        got = read_idx(path)
    except ValueError:
        return
    # accepted: then the header is a valid one and the data is exactly the rest of the file
    ndim = blob[3]
    shape = struct.unpack(f">{ndim}I", blob[4:4 + 4 * ndim])
    assert got.shape == shape and got.dtype.isnative
    body = blob[4 + 4 * ndim:]
    assert got.nbytes == len(body)
    np.testing.assert_array_equal(got.ravel(), np.frombuffer(body, got.dtype.newbyteorder(">")
                                                             if got.dtype.itemsize > 1
                                                             else got.dtype))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x07, 0xFF]),
       shape=st.lists(st.one_of(st.integers(0, 4), st.just(2**32 - 1)), min_size=0, max_size=5),
       extra=st.integers(-3, 3))
def test_forged_headers_are_refused_before_allocating(tmp_path, code, shape, extra):
    """Any type code, rank and sizes (up to 2^32 - 1) with data one to three bytes short or
    long: a ValueError, or exactly the array the header describes."""
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    n = math.prod(shape) * itemsize
    head = b"\0\0" + bytes([code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    body = bytes(i % 251 for i in range(max(n + extra, 0))) if n <= 4096 else b"\1" * 64
    path = tmp_path / "f"
    path.write_bytes(head + body)
    try:
        got = read_idx(path)
    except ValueError:
        return
    assert code in (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E) and shape and len(body) == n
    assert got.shape == tuple(shape) and got.nbytes == n
