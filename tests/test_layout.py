"""tests/ mirrors cdl/ module for module, and every test file has a place.

cdl/<dir>/<mod>.py is tested in tests/<dir>/test_<mod>.py, with a leading underscore
dropped (cdl/_serial.py -> tests/test_serial.py, cdl/cuda/_launch.py ->
tests/cuda/test_launch.py, cdl/__main__.py -> tests/test_main.py); a package's
__init__.py in tests/<dir>/test_package.py.
Both lists are computed from the tree, so a new, renamed or split module fails here
until its test file exists.

csrc/*.pyx is not mirrored: the Cython extension (cdl._im2col) is reached only through
cdl/kernels/im2col.py and cdl/ops.py, whose tests (tests/kernels/test_im2col.py,
tests/test_ops.py) call every entry point of the extension.

A test file that mirrors no module is allowed only in CROSS_CUTTING, with its reason.
Files not named test_*.py (conftest.py, helpers such as tests/viz/_helpers.py, the MPI
programs of tests/distributed) are not test files and need no entry.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cdl"
TESTS = ROOT / "tests"

# Test files that belong to no single module, each with why. Keep this list short: a test of
# one module goes in that module's file.
CROSS_CUTTING = {
    "test_layout.py": "this file: the layout of tests/ itself",
    "test_embedding.py": "cdl inside another program: threads, process-wide state",
    "test_examples.py": "the scripts of examples/ and their README",
    "test_readme.py": "README's commands are what CI runs",
    "test_docs.py": "the API reference: docstrings of every public module, pdoc builds it",
    "test_bad_input.py": "bad input through every public entry point",
    "test_memory.py": "peak memory of whole training steps",
    "test_finetune.py": "fine-tuning across layers, optimizers, Sequential and Trainer",
    "cuda/test_compile.py": "every @cuda.jit kernel of cdl/cuda compiles for a real GPU",
    "cuda/test_training_step.py": "a whole training step on the device equals the CPU's",
}
# Folders of cross-cutting test files (any test_*.py inside is allowed), each with why.
CROSS_CUTTING_FOLDERS = {
    "fuzz": "the fuzz harness of the readers of outside bytes and its corpus",
}


def _mirror(module):
    """The test file (relative to tests/) of a module (relative to cdl/)."""
    stem = module.stem
    if stem == "__init__":
        name = "package"
    elif stem.startswith("__") and stem.endswith("__"):  # __main__.py -> test_main.py
        name = stem[2:-2]
    else:
        name = stem.lstrip("_")
    return (module.parent / f"test_{name}.py").as_posix()


def _modules():
    return sorted(p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py")
                  if "__pycache__" not in p.parts)


def _test_files():
    return sorted(p.relative_to(TESTS).as_posix() for p in TESTS.rglob("test_*.py")
                  if "__pycache__" not in p.parts)


def _has_tests(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                node.name.startswith("test"):
            return True
    return False


def test_every_module_has_its_test_file():
    missing = [f"cdl/{m.as_posix()} -> tests/{_mirror(m)}" for m in _modules()
               if not (TESTS / _mirror(m)).is_file()]
    assert not missing, "modules without their test file:\n  " + "\n  ".join(missing)


def test_no_two_modules_share_a_test_file():
    # cdl/x.py and cdl/_x.py would both map to tests/test_x.py, hiding one of them
    seen = {}
    for m in _modules():
        seen.setdefault(_mirror(m), []).append(m.as_posix())
    shared = {t: ms for t, ms in seen.items() if len(ms) > 1}
    assert not shared, shared


def test_every_test_file_mirrors_a_module_or_is_cross_cutting():
    mirrors = {_mirror(m) for m in _modules()}
    stray = [t for t in _test_files() if t not in mirrors and t not in CROSS_CUTTING
             and t.split("/")[0] not in CROSS_CUTTING_FOLDERS]
    assert not stray, ("test files that mirror no module of cdl/ (rename them after their "
                       "module, or add them to CROSS_CUTTING with a reason):\n  "
                       + "\n  ".join(stray))


def test_cross_cutting_files_exist_and_mirror_nothing():
    mirrors = {_mirror(m) for m in _modules()}
    for name, reason in CROSS_CUTTING.items():
        assert reason
        assert (TESTS / name).is_file(), f"CROSS_CUTTING names a missing file: tests/{name}"
        assert name not in mirrors, f"tests/{name} mirrors a module: drop it from CROSS_CUTTING"
    for folder, reason in CROSS_CUTTING_FOLDERS.items():
        assert reason
        assert (TESTS / folder).is_dir(), f"CROSS_CUTTING_FOLDERS names a missing folder: tests/{folder}"
        assert not (PACKAGE / folder).exists(), f"tests/{folder} mirrors cdl/{folder}"


def test_every_test_file_has_tests():
    empty = [t for t in _test_files() if not _has_tests(TESTS / t)]
    assert not empty, f"test files without a test function: {empty}"


def test_the_mirror_rule():
    # the rule above, on the cases the convention names
    assert _mirror(pathlib.Path("_serial.py")) == "test_serial.py"
    assert _mirror(pathlib.Path("cuda/_launch.py")) == "cuda/test_launch.py"
    assert _mirror(pathlib.Path("layers/conv.py")) == "layers/test_conv.py"
    assert _mirror(pathlib.Path("__init__.py")) == "test_package.py"
    assert _mirror(pathlib.Path("__main__.py")) == "test_main.py"
    assert _mirror(pathlib.Path("tune/__init__.py")) == "tune/test_package.py"
