"""``python -m cdl``: cdl/__main__.py runs the command line (cdl.cli.main) as ``cdl`` does."""
import runpy
import subprocess
import sys

import pytest

import cdl


def _run_module(monkeypatch, *args):
    """SystemExit code of ``python -m cdl ARGS``, run in this process."""
    monkeypatch.setattr(sys, "argv", ["cdl", *args])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("cdl", run_name="__main__", alter_sys=True)
    return exit_.value.code


def test_version(monkeypatch, capsys):
    assert _run_module(monkeypatch, "--version") == 0
    assert capsys.readouterr().out.strip() == f"cdl {cdl.__version__}"


def test_no_command_prints_the_usage(monkeypatch, capsys):
    assert _run_module(monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cdl") and "train" in out


def test_bad_command_is_one_line_and_status_2(monkeypatch, capsys):
    assert _run_module(monkeypatch, "fly") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice: 'fly'" in err


@pytest.mark.slow
def test_python_dash_m_cdl_from_the_shell():
    proc = subprocess.run([sys.executable, "-m", "cdl", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"cdl {cdl.__version__}"
