"""cdl.models as a package: MODELS (every model trains on the 8x8 digits of ``cdl train``;
--help lists each one), default_input_shape, the exported builders."""
import numpy as np
import pytest

from cdl.cli import main
from cdl.models import MODELS, default_input_shape


def test_every_architecture_is_registered():
    assert {"cnn", "mlp", "binary_mlp", "binary_cnn", "simple_cnn", "deep_cnn", "resnet",
            "resnet20", "resnet32", "resnet56", "vgg11", "vgg16", "alexnet",
            "googlenet"} <= set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_takes_the_digits(name):
    """What `cdl train --model NAME` builds: input (1, 8, 8), one training step."""
    net = MODELS[name](input_shape=(1, 8, 8), num_classes=10, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).uniform(0, 1, (4, 1, 8, 8)).astype(np.float32)
    loss = net.loss(x, np.array([0, 3, 9, 1]))
    net.backward()
    assert np.isfinite(loss) and set(net.grads) == set(net.params)


def test_default_input_shapes():
    assert default_input_shape("cnn") == (1, 8, 8)
    assert default_input_shape("vgg16") == default_input_shape("googlenet") == (3, 32, 32)
    assert default_input_shape("deep_cnn") == (1, 28, 28)


def test_train_help_lists_every_model_with_its_shape(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in MODELS:
        shape = "x".join(map(str, default_input_shape(name)))
        assert f"{name} ({shape})" in text


def test_exported_names_are_the_builders():
    import cdl
    from cdl import models
    for name in models.__all__:
        assert callable(getattr(models, name)) or name == "MODELS", name
    assert set(MODELS.values()) <= {getattr(models, n) for n in models.__all__ if n != "MODELS"}
    assert cdl.models is models
