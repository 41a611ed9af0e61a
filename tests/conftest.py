import numpy as np
import pytest

import cdl


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
