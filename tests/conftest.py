import os

# The GPU path is tested on numba's CUDA simulator unless CDL_TEST_DEVICE=cuda asks for the
# real GPU. Numba reads the switch when it is first imported, so it is set before cdl loads.
if os.environ.get("CDL_TEST_DEVICE") != "cuda":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

# Kernels compile in the process that calls them (cdl.kernels.ahead would compile the
# convolutions in a second process, racing the tests that check what compiled where);
# tests/kernels/test_ahead.py turns it on where it tests it. Subprocesses inherit this.
os.environ["CDL_COMPILE_AHEAD"] = "0"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import cdl  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _tuning_cache(tmp_path_factory):
    """The algorithm tuner's disk cache (cdl.kernels.tuner) in a temporary folder for the
    whole session, subprocesses included: tests never write to the user's ~/.cache."""
    before = os.environ.get("CDL_CACHE_DIR")
    os.environ["CDL_CACHE_DIR"] = str(tmp_path_factory.mktemp("cdl-cache"))
    yield
    if before is None:
        os.environ.pop("CDL_CACHE_DIR", None)
    else:
        os.environ["CDL_CACHE_DIR"] = before


@pytest.fixture
def rng():
    """A seeded generator per test; also reseeds cdl's default generator."""
    cdl.seed(1234)
    return np.random.default_rng(1234)


def pytest_collection_modifyitems(config, items):
    if not any("cuda" in item.keywords for item in items):
        return
    if cdl.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU (numba.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def simulated():
    """True when numba.cuda is the CPU simulator (tests keep shapes tiny there)."""
    from numba import config
    return bool(config.ENABLE_CUDASIM)


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Parametrizes a test over the CPU and the GPU (the simulator without a GPU)."""
    if request.param == "cuda" and not cdl.cuda.is_available():
        pytest.skip("no CUDA GPU and the simulator is off")
    return request.param


def on(device, *arrays):
    """The arrays on ``device`` ("cpu": as they are; "cuda": copied to the GPU)."""
    moved = [cdl.cuda.to_device(a) if device == "cuda" and a is not None else a for a in arrays]
    return moved[0] if len(moved) == 1 else moved


def host(a):
    """A NumPy copy of a device array, or a NumPy array as it is."""
    return cdl.cuda.to_host(a)
