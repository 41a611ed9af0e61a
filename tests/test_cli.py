import subprocess
import sys

import pytest

import cdl
from cdl.cli import main


def test_train_runs_and_saves(tmp_path, capsys):
    path = tmp_path / "m.npz"
    assert main(["train", "--epochs", "1", "--model", "mlp", "--save", str(path), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "test accuracy" in out
    assert cdl.load(path).layers


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "0"],
    ["train", "--epochs", "many"],
    ["train", "--lr", "-1"],
    ["train", "--optimizer", "magic"],
    ["train", "--model", "nope"],
    ["train", "--bogus"],
])
def test_bad_option_is_one_line_and_nonzero(argv):
    proc = subprocess.run([sys.executable, "-m", "cdl.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "error" in proc.stderr
