"""Every command of examples/README.md runs in --quick mode, prints its table and saves its
figure (or, without matplotlib, says in one line how to get it); the README shows each
example's committed figure."""
import pathlib
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = (EXAMPLES / "README.md").read_text()
# "    python examples/01_optimizers.py --out examples/figures" in the README's code blocks
COMMANDS = re.findall(r"^\s*python (examples/\d\d_\w+\.py)(.*)$", README, flags=re.M)
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
FIGURES = re.findall(r"!\[[^\]]*\]\(figures/([\w.-]+\.png)\)", README)
HINT = 'needs matplotlib: pip install "cdl[plot]"'


def has_matplotlib():
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None


def quick_argv(script, args, out, block_matplotlib=False):
    """The README's command with --quick and --out changed to out (and, if asked, run with
    matplotlib made unimportable)."""
    args = re.sub(r"--out\s+\S+", "", args).split()
    argv = [str(ROOT / script), *args, "--quick", "--out", str(out)]
    if not block_matplotlib:
        return [sys.executable, *argv]
    code = ("import runpy, sys; sys.modules['matplotlib'] = None; "
            f"sys.path.insert(0, {str(EXAMPLES)!r}); sys.argv = {argv!r}; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    return [sys.executable, "-c", code]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every README command with --quick, two at a time (the machines have 2 cores)."""
    out = tmp_path_factory.mktemp("examples")

    def run(command):
        script, args = command
        proc = subprocess.run(quick_argv(script, args, out / pathlib.Path(script).stem),
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        return script, proc

    with ThreadPoolExecutor(2) as pool:
        done = dict(pool.map(run, dict.fromkeys(COMMANDS)))
    return out, done


def test_readme_runs_every_example_and_shows_small_figures():
    assert sorted({pathlib.Path(s).name for s, _ in COMMANDS}) == SCRIPTS
    assert FIGURES, "examples/README.md shows no figure"
    for name in FIGURES:
        path = EXAMPLES / "figures" / name
        assert path.exists(), f"examples/README.md shows {name}, not in examples/figures"
        assert path.stat().st_size < 100_000, f"{name}: keep the committed figures small"
    for name in SCRIPTS:  # each example's figures are in the README
        stem = name[:2]
        assert any(f.startswith(stem) for f in FIGURES), f"no figure of {name} in the README"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(dict.fromkeys(s for s, _ in COMMANDS)))
def test_example_runs_quick(script, runs):
    out, done = runs
    proc = done[script]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert re.search(r"^-+ +-+", proc.stdout, flags=re.M), "no table printed"
    folder = out / pathlib.Path(script).stem
    pngs = sorted(p.name for p in folder.glob("*.png")) if folder.exists() else []
    if has_matplotlib():
        assert pngs, "no figure saved"
        shown = {f for f in FIGURES if f[:2] == pathlib.Path(script).name[:2]}
        assert shown <= set(pngs), f"README figures {shown} not all made by --quick"
    else:
        assert not pngs and HINT in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", ["examples/03_batchnorm.py", "examples/05_search.py"])
def test_example_without_matplotlib_prints_its_table_and_the_hint(script, tmp_path):
    if not has_matplotlib():
        pytest.skip("matplotlib is not installed: every run above already goes without it")
    args = dict(COMMANDS)[script]
    proc = subprocess.run(quick_argv(script, args, tmp_path, block_matplotlib=True),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^-+ +-+", proc.stdout, flags=re.M)
    assert HINT in proc.stdout and not list(tmp_path.glob("*.png"))
