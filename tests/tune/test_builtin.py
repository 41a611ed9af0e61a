"""cdl.tune.builtin, the objective and table of `cdl tune`: the built-in models on the digits,
searched on the training part only."""
import re

import numpy as np
import pytest

from cdl import tune
from cdl.cli import main


@pytest.mark.slow
def test_cli_searches_only_the_training_part(monkeypatch):
    """`cdl tune` hands search the training part of the digits, never the test part."""
    from cdl import data
    captured = {}
    real = tune.search

    def spy(*args, **kwargs):
        captured.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tune, "search", spy)
    assert main(["tune", "--model", "mlp", "--trials", "1", "--epochs", "1"]) == 0
    (x, t), (xt, tt) = data.load_digits()
    xs, ts = captured["data"]
    assert np.array_equal(xs, x) and np.array_equal(ts, t) and len(xs) + len(xt) == 1797


def test_cli_tune_end_to_end(capsys):
    assert main(["tune", "--model", "mlp", "--trials", "2", "--epochs", "1",
                 "--method", "random", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "validation" in out and "test images stay out" in out
    rows = [line for line in out.splitlines() if re.match(r"\s+\d+\s+\d+\s+\S+\s+\S+\s+0\.", line)]
    assert len(rows) == 2 and all(line.rstrip().endswith("complete") for line in rows)
    best = re.search(r"cdl train --model mlp --epochs 1 --lr (\S+) --seed 1", out)
    assert best and 1e-4 <= float(best.group(1)) <= 3e-2
    assert "# and weight decay" in out


def test_cli_grid_is_a_grid_of_at_most_n(capsys):
    from cdl.tune import builtin
    space = builtin.grid_space(5)
    assert len(space["lr"]) * len(space["weight_decay"]) <= 5
    assert len(builtin.grid_space(2)["lr"]) == 2


@pytest.mark.parametrize("argv", [["tune", "--trials", "0"], ["tune", "--method", "bayes"],
                                  ["tune", "--jobs", "-1"]])
def test_cli_bad_option_is_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def _trial(score, reports, state="complete", error=None):
    return {"params": {"lr": 0.01, "weight_decay": 1e-5}, "score": score, "reports": reports,
            "state": state, "error": error, "number": 2, "epochs": len(reports), "seconds": 1.25}


def test_score_text_and_table():
    from cdl.tune import builtin
    assert builtin.score_text(_trial(0.97123, [(1, 0.9)])) == "0.9712"
    assert builtin.score_text(_trial(None, [(1, 0.41234)], "pruned")) == "(0.4123)"
    assert builtin.score_text(_trial(None, [], "failed", "ValueError: x")) == "-"
    lines = builtin.table([_trial(0.5, [(1, 0.5)]), _trial(None, [], "failed", "ValueError: x")])
    assert lines[0].split() == ["rank", "trial", "lr", "weight_decay", "val_acc", "epochs",
                                "seconds", "state"]
    assert lines[1].split() == ["1", "3", "0.01", "1e-05", "0.5000", "1", "1.2", "complete"]
    assert lines[2].endswith("failed (ValueError: x)")
