"""The networks: output shapes for images, flat vectors and other sizes; normalization; rebuild."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from otdata.models import MLP, Classifier, LeNet5, Normalize, SmallCNN, SmallResNet, net_config

NETS = [SmallCNN, LeNet5, SmallResNet]


@pytest.mark.parametrize("cls", NETS)
@pytest.mark.parametrize("num_classes", [10, 4])
def test_shapes_28(cls, num_classes):
    net = cls(num_classes=num_classes).eval()
    x = torch.rand(5, 1, 28, 28)
    assert net(x).shape == (5, num_classes)
    assert net(x.reshape(5, 784)).shape == (5, num_classes)


@pytest.mark.parametrize("cls", NETS)
def test_shapes_16(cls):
    net = cls(image_size=16).eval()
    assert net(torch.rand(3, 1, 16, 16)).shape == (3, 10)
    assert net(torch.rand(3, 256)).shape == (3, 10)


@pytest.mark.parametrize("cls", NETS)
def test_flat_and_image_inputs_agree(cls):
    net = cls().eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x.flatten(1)))


def test_normalize_is_fixed_and_reshapes():
    norm = Normalize(1, 4, mean=0.5, std=0.25)
    x = torch.full((2, 16), 0.75)
    out = norm(x)
    assert out.shape == (2, 1, 4, 4)
    assert torch.allclose(out, torch.ones_like(out))
    assert not list(norm.parameters())
    assert "mean" not in norm.state_dict()


def test_embed_is_penultimate():
    net = SmallCNN(hidden=32).eval()
    assert net.embed(torch.rand(2, 1, 28, 28)).shape == (2, 32)


@pytest.mark.parametrize("cls,kwargs", [
    (SmallCNN, {"channels": (8, 16), "hidden": 24, "double_conv": True}),
    (LeNet5, {"image_size": 16, "num_classes": 3}),
    (SmallResNet, {"widths": [8, 16], "blocks_per_stage": 2}),
])
def test_net_config_rebuilds_the_same_network(cls, kwargs):
    net = cls(**kwargs).eval()
    config = net_config(net)
    assert config["_target_"].endswith(cls.__name__)
    rebuilt = instantiate(config).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.rand(2, 1, net.image_size, net.image_size)
    with torch.no_grad():
        torch.testing.assert_close(net(x), rebuilt(x))


def test_lenet_rejects_tiny_images():
    with pytest.raises(ValueError):
        LeNet5(image_size=8)


def test_mlp_classifier_checkpoint_round_trip(tmp_path):
    model = Classifier(net=MLP(in_features=6, num_classes=3, hidden=[4]))
    import lightning as L

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "mlp.ckpt")
    loaded = Classifier.load_from_checkpoint(tmp_path / "mlp.ckpt")
    X = torch.randn(7, 6)
    assert torch.equal(loaded.predict(X), model.predict(X))
