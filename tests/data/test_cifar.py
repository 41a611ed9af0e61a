"""cdl.data.cifar: CIFAR-10's binary batches, checked record by record."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdl.data import cifar10_available, load_cifar10, read_cifar_batch
from cdl.data.cifar import RECORD, TEST_FILE, TRAIN_FILES

from .._fuzz import damaged


def _records(labels, rng):
    """Bytes of CIFAR-10 records with the given labels, and their images (N, 3, 32, 32)."""
    images = rng.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8)
    rows = np.concatenate([np.asarray(labels, np.uint8)[:, None], images.reshape(len(labels), -1)],
                          axis=1)
    return rows.tobytes(), images


def _write_set(folder, per_file=2):
    """Six tiny batch files in folder; returns the train and test images and labels written."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate((*TRAIN_FILES, TEST_FILE)):
        labels = [(i + k) % 10 for k in range(per_file)]
        blob, images = _records(labels, rng)
        (folder / name).write_bytes(blob)
        written[name] = (images, labels)
    x = np.concatenate([written[f][0] for f in TRAIN_FILES])
    t = sum((written[f][1] for f in TRAIN_FILES), [])
    return (x, t), written[TEST_FILE]


def test_loads_nchw_in_unit_range_with_int64_labels(tmp_path):
    (x_raw, t_raw), (xt_raw, tt_raw) = _write_set(tmp_path / "cifar-10-batches-bin")
    for path in (tmp_path / "cifar-10-batches-bin", tmp_path):  # the folder or the one above
        (x, t), (xt, tt) = load_cifar10(str(path))
        assert x.shape == (10, 3, 32, 32) and xt.shape == (2, 3, 32, 32)
        assert x.dtype == np.float32 and t.dtype == np.int64
        np.testing.assert_array_equal(x * 255, x_raw.astype(np.float32))
        np.testing.assert_array_equal(xt * 255, xt_raw.astype(np.float32))
        assert t.tolist() == t_raw and tt.tolist() == tt_raw


def test_record_layout_is_label_then_red_green_blue_planes(tmp_path):
    record = np.zeros(RECORD, np.uint8)
    record[0] = 7
    record[1 + 0 * 1024 + 0] = 255            # red, top-left pixel
    record[1 + 1 * 1024 + 31] = 128           # green, top-right pixel
    record[1 + 2 * 1024 + 32 * 31] = 64       # blue, bottom-left pixel
    (tmp_path / "b.bin").write_bytes(record.tobytes())
    images, labels = read_cifar_batch(tmp_path / "b.bin")
    assert labels.tolist() == [7] and images.shape == (1, 3, 32, 32)
    assert images[0, 0, 0, 0] == 255 and images[0, 1, 0, 31] == 128 and images[0, 2, 31, 0] == 64
    assert images.sum() == 255 + 128 + 64


@pytest.mark.parametrize("cut", [1, RECORD - 1, RECORD + 1])
def test_length_not_a_multiple_of_3073_is_refused(tmp_path, cut):
    _write_set(tmp_path)
    blob = (tmp_path / "data_batch_3.bin").read_bytes()
    (tmp_path / "data_batch_3.bin").write_bytes((blob + blob)[:cut] if cut > len(blob)
                                                else blob[:-cut])
    with pytest.raises(ValueError, match=r"data_batch_3\.bin: \d+ bytes is not a whole number"):
        load_cifar10(str(tmp_path))


def test_empty_file_and_bad_labels_are_refused(tmp_path):
    _write_set(tmp_path)
    (tmp_path / TEST_FILE).write_bytes(b"")
    with pytest.raises(ValueError, match=r"test_batch\.bin: 0 bytes"):
        load_cifar10(str(tmp_path))
    blob, _ = _records([3, 12], np.random.default_rng(1))
    (tmp_path / TEST_FILE).write_bytes(blob)
    with pytest.raises(ValueError, match=r"test_batch\.bin: record 1 has label 12, outside 0\.\.9"):
        load_cifar10(str(tmp_path))


def test_cifar100_records_are_refused(tmp_path):
    """CIFAR-100's binary records are 3074 bytes: never read as shifted CIFAR-10 pixels."""
    _write_set(tmp_path)
    (tmp_path / "data_batch_1.bin").write_bytes(bytes(2 * 3074))
    with pytest.raises(ValueError, match="not a whole number of CIFAR-10 records"):
        load_cifar10(str(tmp_path))


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("CDL_DATA", raising=False)
    _write_set(tmp_path)
    (tmp_path / "data_batch_5.bin").unlink()
    with pytest.raises(FileNotFoundError) as e:
        load_cifar10(str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "cifar-10-binary.tar.gz" in msg and "data_batch_5.bin" in msg
    assert not cifar10_available(str(tmp_path))
    monkeypatch.setenv("CDL_DATA", str(tmp_path / "env"))
    _write_set(tmp_path / "env" / "cifar10")
    assert cifar10_available() and len(load_cifar10()[0][0]) == 10


# -- fuzz -------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), labels=st.lists(st.integers(0, 9), min_size=1, max_size=3))
def test_damaged_batches_are_a_value_error_or_exactly_their_records(tmp_path, data, labels):
    """Cut, padded or overwritten bytes: refused by name, or (when the damage kept the length
    and left labels 0..9) read back record for record."""
    blob, _ = _records(labels, np.random.default_rng(0))
    bad = damaged(data, blob)
    if data.draw(st.booleans(), label="pad"):
        bad += bytes(data.draw(st.integers(1, 3), label="extra"))
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bad)
    try:
        images, t = read_cifar_batch(path)
    except ValueError as e:
        assert "data_batch_1.bin" in str(e)
        assert len(bad) % RECORD or not bad or max(bad[::RECORD]) > 9
        return
    assert len(bad) % RECORD == 0 and len(bad)
    records = np.frombuffer(bad, np.uint8).reshape(-1, RECORD)
    np.testing.assert_array_equal(t, records[:, 0])
    np.testing.assert_array_equal(images.reshape(len(t), -1), records[:, 1:])


def test_a_folder_or_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_cifar_batch(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="d: "):
        read_cifar_batch(tmp_path / "d")
