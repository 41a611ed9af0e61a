"""cdl.kernels.tuner_cache: where the tuning file lives, reading it (corrupt or stale files
ignored with one warning), merging writes, and forgetting."""
import json
import os

import pytest

from cdl.kernels import tuner_cache as C


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache folder and a process that has read nothing yet."""
    monkeypatch.setenv("CDL_CACHE_DIR", str(tmp_path / "cache"))
    C.forget()
    yield C.cache_path()
    C.forget()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CDL_CACHE_DIR", str(tmp_path / "x"))
    assert C.cache_dir() == str(tmp_path / "x")
    monkeypatch.delenv("CDL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.cache_dir() == str(tmp_path / "xdg" / "cdl")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert C.cache_dir() == str(tmp_path / "home" / ".cache" / "cdl")
    assert os.path.basename(C.cache_path()).startswith("tuning-")


def test_writes_merge_with_the_file_and_read_back(fresh):
    C.write(fresh, "k1", {"choice": "a", "ms": {"a": 1.0}})
    with open(fresh) as f:
        data = json.load(f)
    assert data["format"] == 1 and {k: data[k] for k in ("cdl", "numba", "cpu")} == C.versions()
    # another process wrote k2 meanwhile: a write keeps it
    data["entries"]["k2"] = {"choice": "b", "ms": {"b": 2.0}}
    with open(fresh, "w") as f:
        json.dump(data, f)
    C.write(fresh, "k3", {"choice": "c", "ms": {"c": 3.0}})
    assert set(C.read(fresh)) == {"k1", "k2", "k3"}
    C.forget()
    assert set(C.entries(fresh)) == {"k1", "k2", "k3"}


@pytest.mark.parametrize("text, match", [
    ("{not json", "unreadable"),
    (json.dumps({"format": 2, "entries": {}}), "not a cdl tuning file"),
    (json.dumps({"format": 1, "cdl": "0.0.1", "numba": "x", "cpu": "y", "entries": {}}),
     "written by another cdl"),
])
def test_bad_files_read_as_empty_with_one_warning(fresh, text, match):
    os.makedirs(os.path.dirname(fresh), exist_ok=True)
    with open(fresh, "w") as f:
        f.write(text)
    with pytest.warns(C.TuningWarning, match=match) as w:
        assert C.read(fresh) == {} and C.read(fresh) == {}
    assert len(w) == 1
    assert C.read(fresh, quiet=True) == {}


def test_forget_can_delete_the_file(fresh):
    C.write(fresh, "k", {"choice": "a", "ms": {"a": 1.0}})
    C.forget()
    assert os.path.exists(fresh)
    C.forget(delete=True)
    assert not os.path.exists(fresh)
    C.forget(delete=True)  # nothing to delete: no error
