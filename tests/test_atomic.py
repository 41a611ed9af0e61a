"""Atomic, durable saves (cdl._atomic): file modes, symbolic links, fsyncs, stale temporary
files of killed saves, and save paths checked before training."""
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import cdl
from cdl import _atomic
from cdl import layers as L
from cdl.cli import main
from cdl.model import Sequential


def tiny_net(rng=0):
    return Sequential([L.Conv2D(1, 2, 3, pad=1, rng=rng), L.BatchNorm(2), L.ReLU(),
                       L.Flatten(), L.Affine(2 * 4 * 4, 3, rng=rng)],
                      loss=L.SoftmaxCrossEntropy())


# -- atomic_write and check_save_path directly -----------------------------------------------

def test_atomic_write_replaces_the_target_only_when_complete(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _atomic.atomic_write(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # the temporary file is gone
    _atomic.atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new"


def test_atomic_savez_writes_an_npz(tmp_path):
    path = tmp_path / "a.npz"
    _atomic.atomic_savez(path, {"x": np.arange(3)})
    with np.load(path, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["x"], np.arange(3))


def test_write_errors_name_the_caller_and_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mine: cannot write .*nope.*f\.bin"):
        _atomic.atomic_write(tmp_path / "nope" / "f.bin", lambda f: None, who="mine")


def test_check_save_path(tmp_path):
    _atomic.check_save_path(tmp_path / "m.npz")  # fine: nothing raised
    with pytest.raises(ValueError, match="is a folder"):
        _atomic.check_save_path(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        _atomic.check_save_path(tmp_path / "x" / "m.npz")


def test_remove_stale_temps_of_a_missing_folder_does_nothing(tmp_path):
    _atomic.remove_stale_temps(tmp_path / "missing", "m.npz")
    assert list(tmp_path.iterdir()) == []


# -- saving ----------------------------------------------------------------------------

@pytest.fixture
def umask():
    """Set the process umask inside a test; restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_get_the_mode_open_would_give(tmp_path, umask, mask, mode):
    umask(mask)
    tiny_net().save(tmp_path / "m.npz")
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == mode


def test_an_existing_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    path.chmod(0o640)
    umask(0o077)
    tiny_net().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert cdl.load(path).layers


def test_save_writes_through_a_symlink(tmp_path):
    real = tmp_path / "store" / "m.npz"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    tiny_net().save(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert cdl.load(real).layers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "store"]
    assert [p.name for p in real.parent.iterdir()] == ["m.npz"]


def test_save_fsyncs_the_file_and_the_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    tiny_net().save(tmp_path / "m.npz")
    assert synced == [False, True]


def test_save_to_a_missing_folder_names_the_target(tmp_path):
    path = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(FileNotFoundError, match=r"Sequential.save: cannot write .*m\.npz"):
        tiny_net().save(path)


def test_save_removes_stale_temp_files_of_dead_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.npz.cdl-{dead.pid}-0123abcd.tmp"
    live = tmp_path / f".m.npz.cdl-{os.getppid()}-0123abcd.tmp"  # a save in progress elsewhere
    other = tmp_path / f".n.npz.cdl-{dead.pid}-0123abcd.tmp"     # another target's
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    tiny_net().save(tmp_path / "m.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.npz", live.name, other.name])


_SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    import cdl
    net = cdl.Sequential([cdl.layers.Affine(1024, 2048, rng=0)])
    print("ready", flush=True)
    while True:
        net.save(sys.argv[1])
""")


def _kill_mid_save(path):
    """Start a process saving to path in a loop, SIGKILL it while a temp file exists; its pid."""
    child = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 20
        while not any(p.suffix == ".tmp" for p in path.parent.iterdir()):
            assert time.monotonic() < deadline, "the child never started a save"
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=20)  # reaped: a zombie would still count as alive
        child.stdout.close()
    return child.pid


def test_a_save_killed_midway_is_cleaned_up_by_the_next(tmp_path):
    """SIGKILL cannot be caught: the temp file stays until the next save to that path."""
    path = tmp_path / "m.npz"
    for _ in range(5):  # the kill may land between two saves, when no temp file exists
        pid = _kill_mid_save(path)
        left = [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"]
        if left:
            break
    assert left and all(n.startswith(f".m.npz.cdl-{pid}-") for n in left)
    tiny_net().save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert cdl.load(path).layers


# -- cdl train --save is checked before training ------------------------------------------

@pytest.mark.parametrize("where, match", [
    (lambda d: d / "missing" / "m.npz", "folder .*missing does not exist"),
    (lambda d: d, "is a folder"),
])
def test_train_refuses_a_bad_save_path_before_training(tmp_path, capsys, where, match):
    path = where(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", "1", "--model", "mlp", "--save", str(path)])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert "epoch" not in out
    assert len(err.strip().splitlines()) == 1
    assert "--save" in err and str(path) in err
    assert re.search(match, err)


def test_train_refuses_a_read_only_folder(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere: pretend it may not
        monkeypatch.setattr(os, "access", lambda p, mode: os.fspath(p) != str(folder))
    try:
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--epochs", "1", "--model", "mlp", "--save", str(folder / "m.npz")])
    finally:
        folder.chmod(0o755)
    assert exit_.value.code == 2
    assert f"folder {folder} is not writable" in capsys.readouterr().err
