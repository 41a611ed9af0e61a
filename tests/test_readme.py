"""README.md as tests: its two set-up commands are what CI runs, and its Python runs.

Snippets. Every ```python block of README.md is a whole program: it imports
its own names and loads its own data (the digits that ship with cdl, or random
arrays; never a download), so that a reader can paste it as it stands. Each
runs verbatim, in README order, in a fresh namespace (``__name__ ==
"__main__"``) with a temporary working directory (snippets may write files);
a traceback names README.md and the line in it. A snippet whose first line is

    # needs: NAME, NAME, ...

runs only where every NAME is available and is skipped, with the reason,
elsewhere. A NAME is

- a module (one of MODULES: onnx, onnxruntime, matplotlib, optuna, mpi4py,
  ...): importable (the optional extras of pyproject.toml bring them);
- ``cuda``: numba.cuda, a GPU or Numba's CUDA simulator (conftest.py turns the
  simulator on unless CDL_TEST_DEVICE=cuda); keep such a snippet tiny, the
  simulator runs each GPU thread in Python;
- ``gpu``: a real CUDA GPU (CDL_TEST_DEVICE=cuda on a GPU machine); for code
  the simulator would take minutes over (a training run), skipped on it;
- ``mpiexec``: a program for several ranks; it runs as ``mpiexec -n 2 python
  snippet.py`` in a subprocess when mpi4py and mpiexec are installed (the
  ``mpi`` extra), else as one rank (``python snippet.py``) when mpi4py is,
  else it is skipped.

Snippets that train (a Trainer or a search) or start processes take more than
a second and are marked slow; the others are not.
"""
import importlib.util
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

MODULES = {"onnx", "onnxruntime", "matplotlib", "optuna", "mpi4py", "torch", "cupy"}
SPECIAL = {"cuda", "gpu", "mpiexec"}
_NEEDS = re.compile(r"#\s*needs:\s*(.*)$")


def snippets(text):
    """[(line, code)] of the ```python blocks of text, line the 1-based line of the code's
    first line."""
    found, lines, start = [], text.splitlines(), None
    for i, line in enumerate(lines):
        if start is None and line.strip() == "```python":
            start = i + 1
        elif start is not None and line.strip() == "```":
            found.append((start + 1, "\n".join(lines[start:i]) + "\n"))
            start = None
    if start is not None:
        raise ValueError(f"README.md: the ```python block at line {start} is never closed")
    return found


def needs(code):
    """The names of the snippet's ``# needs:`` first line (empty without one)."""
    match = _NEEDS.match(code.splitlines()[0].strip()) if code.strip() else None
    return [n.strip() for n in match.group(1).split(",") if n.strip()] if match else []


_TRAINS = ("Trainer(", "search(", "greedy_pretrain(", "bagging(", "stacking(")


def _slow(code):
    """A snippet that trains, or needs a GPU (the simulator) or other processes."""
    return any(s in code for s in _TRAINS) or bool({"mpiexec", "cuda", "gpu"} & set(needs(code)))


SNIPPETS = snippets(README.read_text())


def _params():
    out = []
    for index, (line, code) in enumerate(SNIPPETS, 1):
        first = code.splitlines()[0].strip() if code.strip() else "(empty)"
        marks = [pytest.mark.slow] if _slow(code) else []
        out.append(pytest.param(line, code, id=f"{index}:L{line}:{first}", marks=marks))
    return out


def _simulated():
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def _mpiexec():
    here = os.path.dirname(sys.executable)  # a venv's bin (the MPICH wheel puts it there)
    return shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))


def _skip_reason(names):
    """Why a snippet needing names cannot run here, or None when it can."""
    import cdl
    for name in names:
        if name in MODULES and importlib.util.find_spec(name) is None:
            return f"needs {name} (an optional extra, see README 'Optional extras')"
        if name in ("cuda", "gpu") and not cdl.cuda.is_available():
            return "needs numba.cuda: no GPU and the CUDA simulator is off"
        if name == "gpu" and _simulated():
            return ("needs a real CUDA GPU (CDL_TEST_DEVICE=cuda): the CUDA simulator takes "
                    "minutes over a training run")
        if name == "mpiexec" and importlib.util.find_spec("mpi4py") is None:
            return 'needs mpi4py (and mpiexec): pip install ".[mpi]"'
    return None


def _launcher(n):
    mpiexec = _mpiexec()
    if mpiexec is None:
        return []  # mpi4py alone: one rank, a singleton MPI job
    cmd = [mpiexec, "-n", str(n)]
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:  # refuses root and 2 > cores otherwise
        cmd += ["--allow-run-as-root", "--oversubscribe"]
    return cmd


def _run_ranks(code, folder, timeout=300):
    """Run code as a program under mpiexec -n 2 (or one rank without mpiexec); fail on a
    non-zero exit or a hang."""
    script = folder / "snippet.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = _launcher(2) + [sys.executable, str(script)]
    proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # mpiexec and its ranks: their own group
        stdout, stderr = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung (killed after {timeout} s)\n{stdout}\n{stderr}")
    assert proc.returncode == 0, (f"{' '.join(cmd)} exited with {proc.returncode}\n{stdout}\n"
                                  f"{stderr}")
    return stdout


# -- the set-up commands ----------------------------------------------------------------

def test_ci_runs_the_readme_commands():
    readme = README.read_text()
    commands = re.findall(r"^    (pip install .*)$", readme, flags=re.M)
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for cmd in commands:
        assert cmd in ci, f"{cmd!r} is not run by .ci/run"
    assert ci.index(commands[0]) < ci.index(commands[1])


# -- links ---------------------------------------------------------------------------------

def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["README.md", "examples/README.md"])
def test_links_resolve(page):
    """Every relative link of the page names a file that exists, every #anchor a heading."""
    path = ROOT / page
    text = path.read_text()
    anchors = {_slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links, f"{page} has no links"
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        if target:
            assert (path.parent / target).exists(), f"{page}: {link} names no file"
        elif anchor:
            assert anchor in anchors, f"{page}: #{anchor} is no heading of {page}"


def test_readme_links_every_example():
    text = README.read_text()
    for script in sorted((ROOT / "examples").glob("[0-9]*.py")):
        assert f"(examples/{script.name})" in text, f"README.md does not link {script.name}"


# -- the snippets -----------------------------------------------------------------------

def test_every_python_block_is_found_and_its_needs_are_known():
    text = README.read_text()
    assert len(SNIPPETS) == text.count("```python") > 0
    for line, code in SNIPPETS:
        assert code.strip(), f"README.md:{line}: an empty ```python block"
        unknown = set(needs(code)) - MODULES - SPECIAL
        assert not unknown, (f"README.md:{line}: unknown '# needs:' names {sorted(unknown)} "
                             f"(known: {sorted(MODULES | SPECIAL)})")
        for i, row in enumerate(code.splitlines()[1:], 1):
            assert not _NEEDS.match(row.strip()), (
                f"README.md:{line + i}: '# needs:' counts on a snippet's first line only")


def test_needs_lines_are_parsed():
    assert needs("# needs: onnx, onnxruntime\nimport onnx\n") == ["onnx", "onnxruntime"]
    assert needs("#needs:gpu\n") == ["gpu"]
    assert needs("import numpy as np\n# needs: gpu\n") == []
    assert snippets("a\n```python\nx = 1\ny = 2\n```\nb\n```python\nz = 3\n```\n") == [
        (3, "x = 1\ny = 2\n"), (8, "z = 3\n")]
    with pytest.raises(ValueError, match="never closed"):
        snippets("```python\nx = 1\n")


@pytest.mark.parametrize("line, code", _params())
def test_snippet_runs(line, code, tmp_path, monkeypatch):
    names = needs(code)
    reason = _skip_reason(names)
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    if "mpiexec" in names:
        _run_ranks(code, tmp_path)
        return
    # Blank lines in front keep README's line numbers in tracebacks.
    program = compile("\n" * (line - 1) + code, str(README), "exec")
    exec(program, {"__name__": "__main__"})
