import re
import subprocess
import sys

import pytest

import cdl
from cdl.cli import _optimizers, main


def test_train_runs_and_saves(tmp_path, capsys):
    path = tmp_path / "m.npz"
    assert main(["train", "--epochs", "1", "--model", "mlp", "--save", str(path), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "test accuracy" in out
    assert cdl.load(path).layers


@pytest.mark.slow
def test_default_train_reaches_the_promised_accuracy(capsys):
    """`cdl train` with no options: above 97 % test accuracy (issue 2; about 12 s here)."""
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    acc = float(re.search(r"test accuracy ([0-9.]+) after 30 epochs", out).group(1))
    assert acc > 0.97


def test_optimizer_choices_are_the_first_order_optimizers():
    assert sorted(_optimizers()) == ["adadelta", "adagrad", "adam", "momentum", "nesterov",
                                     "rmsprop", "sgd"]


@pytest.mark.parametrize("name", sorted(_optimizers()))
def test_train_with_every_first_order_optimizer(name, capsys):
    assert main(["train", "--epochs", "1", "--model", "mlp", "--optimizer", name]) == 0
    acc = float(re.search(r"test accuracy ([0-9.]+)", capsys.readouterr().out).group(1))
    assert acc > 0.2  # 10 classes: twice chance after one epoch with default hyperparameters


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
