"""cdl.optim as a package: the book's optimizers by their DESIGN.md names and keywords, and
every exported name reachable."""
import inspect

import numpy as np
import pytest

import cdl
from cdl import optim


def test_every_exported_name_exists_and_optimizers_share_the_protocol():
    for name in optim.__all__:
        obj = getattr(optim, name)
        assert obj is not None, name
    first_order = [optim.SGD, optim.Momentum, optim.Nesterov, optim.AdaGrad, optim.AdaDelta,
                   optim.RMSProp, optim.Adam]
    for cls in first_order:
        assert issubclass(cls, optim.Optimizer)
        assert "lr" in inspect.signature(cls).parameters
    assert cdl.optim is optim


@pytest.mark.parametrize("cls, kwargs", [
    (optim.SGD, {"lr": 0.1}), (optim.Momentum, {"lr": 0.1, "momentum": 0.9}),
    (optim.Nesterov, {"lr": 0.1, "momentum": 0.9}), (optim.AdaGrad, {"lr": 0.1, "eps": 1e-7}),
    (optim.AdaDelta, {"rho": 0.95, "eps": 1e-6}), (optim.RMSProp, {"lr": 0.01, "rho": 0.99}),
    (optim.Adam, {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
])
def test_design_keywords_and_a_step_downhill(cls, kwargs):
    opt = cls(**kwargs)
    params = {"0.W": np.array([1.0, -2.0], np.float32)}
    opt.update(params, {"0.W": np.array([1.0, -1.0], np.float32)})  # the gradient of |w|
    assert params["0.W"][0] < 1.0 and params["0.W"][1] > -2.0
