import re
import subprocess
import sys

import pytest

import cdl
from cdl.cli import _optimizers, main


@pytest.mark.slow
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


@pytest.mark.parametrize("name", sorted(_optimizers()))  # 0.1 s each once compiled
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
def test_bad_option_is_one_line_and_nonzero(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err


@pytest.mark.slow
def test_bad_option_exits_with_status_2_from_the_shell():
    proc = subprocess.run([sys.executable, "-m", "cdl.cli", "train", "--epochs", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "error" in proc.stderr


def test_version_is_cdls(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"cdl {cdl.__version__}"


def test_bare_cdl_prints_the_usage(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cdl") and all(c in out for c in ("train", "bench", "tune"))


@pytest.mark.slow
def test_ctrl_c_saves_and_stops_in_one_line(tmp_path):
    """Issue 17: SIGINT printed a 44-line traceback and lost the model asked for by --save."""
    import signal
    import threading

    path = tmp_path / "m.npz"
    proc = subprocess.Popen([sys.executable, "-m", "cdl.cli", "train", "--model", "mlp",
                             "--epochs", "100000", "--save", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a suite started in the background (nohup, `cmd &`) ignores
                            # SIGINT, and so would the child: Python then installs no handler
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    watchdog = threading.Timer(120, proc.kill)  # never hang the suite
    watchdog.start()
    try:
        for line in proc.stdout:  # wait for a finished epoch, so training is under way
            if line.startswith("epoch"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    k = int(re.fullmatch(rf"cdl train: interrupted after epoch (\d+); saved to {re.escape(str(path))}",
                         err.strip()).group(1))
    assert k >= 1
    assert cdl.load(path).layers


@pytest.mark.parametrize("data", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_data_set_is_one_line_and_status_2(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CDL_DATA", str(tmp_path))
    monkeypatch.setattr("cdl.data.idx.DEBIAN_MNIST", str(tmp_path / "none"))
    monkeypatch.setattr("cdl.data.idx.DEBIAN_FASHION", str(tmp_path / "none"))
    assert main(["train", "--data", data, "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cdl train: error: ")
    assert "not found" in err and "--data-dir DIR" in err
    assert main(["train", "--data", data, "--data-dir", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_train_on_mnist_files_follows_their_shape(tmp_path, capsys):
    """--data mnist --data-dir DIR: the model is built for 28x28 (tiny fake IDX files)."""
    import gzip
    import struct

    import numpy as np
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        for kind, arr in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                          ("labels-idx1", (np.arange(n) % 10).astype(np.uint8))):
            head = b"\0\0\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
            with gzip.open(tmp_path / f"{split}-{kind}-ubyte.gz", "wb") as f:
                f.write(head + arr.tobytes())
    assert main(["train", "--data", "mnist", "--data-dir", str(tmp_path), "--model", "mlp",
                 "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "on mnist 28x28, 20 train / 10 test images" in out and "test accuracy" in out


@pytest.mark.slow
def test_train_on_cuda_without_a_gpu_is_one_line_and_status_2():
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    proc = subprocess.run([sys.executable, "-m", "cdl.cli", "train", "--device", "cuda",
                           "--epochs", "1"], capture_output=True, text=True, env=env, timeout=120)
    if "no CUDA GPU" not in proc.stderr:  # a machine with a real GPU trains instead
        assert proc.returncode == 0, proc.stderr[-2000:]
        return
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
