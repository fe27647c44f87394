"""Every conf/model/*.yaml composes through the main config and builds a working Classifier."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from otdata.config import CONFIG_DIR
from otdata.models import Classifier, LeNet5, SmallCNN, SmallResNet
from tests.fixtures import compose_config

EXPECTED = {"cnn": SmallCNN, "lenet": LeNet5, "resnet": SmallResNet}


def test_every_model_config_is_covered():
    assert {p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_config_instantiates(name):
    cfg = compose_config([f"model={name}"])
    model = instantiate(cfg.model)
    assert isinstance(model, Classifier) and isinstance(model.net, EXPECTED[name])
    assert model.hparams.net_config["_target_"].endswith(EXPECTED[name].__name__)
    model.eval()
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert model.predict(torch.rand(3, 784)).shape == (3,)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_follows_the_data_image_size(name):
    cfg = compose_config([f"model={name}", "data.image_size=16"])
    model = instantiate(cfg.model).eval()
    assert model.net.image_size == 16
    assert model(torch.rand(2, 256)).shape == (2, 10)
