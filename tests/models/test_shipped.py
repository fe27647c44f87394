"""The MNIST classifier shipped with otdata: its weights load, match their recorded digest and the
`model=cnn` architecture, `experiment=repurpose` uses them only for their own recipe, and
`task.classifier=train` trains that same recipe (here on tiny generated MNIST files)."""

from __future__ import annotations

import logging
import re
import shutil

import pytest
import torch

from otdata.data.content_cache import file_digest
from otdata.models import build_classifier, load_shipped, shipped_record
from otdata.models import shipped
from otdata.tasks import classifier as frozen
from tests.fixtures import compose_config, write_mnist_like


def test_the_shipped_weights_match_their_record_and_the_cnn_architecture():
    record = shipped_record("mnist_cnn")
    weights = shipped.PRETRAINED_DIR / record["weights"]
    assert file_digest(weights) == record["sha256"]
    readme = (shipped.PRETRAINED_DIR / "README.md").read_text()
    assert record["sha256"] in readme and f"{record['test_accuracy']:.2f} %" in readme
    assert record["test_accuracy"] >= 99.3 and record["test_items"] == 10000
    assert record["command"].startswith("otdata experiment=repurpose")

    model = load_shipped("mnist_cnn")
    fresh = build_classifier(compose_config(["experiment=repurpose"]).model, num_classes=10)
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in fresh.state_dict().items()}
    assert type(model.net) is type(fresh.net) and not model.training
    logits = model.logits(torch.rand(3, 784))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()


def test_a_changed_weights_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    copy = tmp_path / "pretrained"
    shutil.copytree(shipped.PRETRAINED_DIR, copy)
    monkeypatch.setattr(shipped, "PRETRAINED_DIR", copy)
    weights = copy / "mnist_cnn.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(shipped.ShippedWeightsError, match="sha256.*task.classifier=train"):
        load_shipped("mnist_cnn")
    with pytest.raises(ValueError, match="No shipped classifier named 'nope'.*mnist_cnn"):
        load_shipped("nope")


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    return write_mnist_like(tmp_path_factory.mktemp("mnist"), "MNIST", n_train=120, n_test=40)


def repurpose_config(root, tmp_path, *overrides):
    return compose_config(["experiment=repurpose", f"paths.data_dir={root}",
                           f"paths.cache_dir={tmp_path / 'cache'}", *overrides], output_dir=tmp_path)


def test_repurpose_uses_the_shipped_classifier_for_its_own_recipe_only(tiny_mnist, tmp_path, caplog):
    cfg = repurpose_config(tiny_mnist, tmp_path)
    assert frozen.classifier_recipe(cfg) == shipped_record("mnist_cnn")["recipe"]
    model, path = frozen.frozen_classifier(cfg)
    assert path == shipped.PRETRAINED_DIR / "mnist_cnn.safetensors"
    assert torch.equal(model.state_dict()["net.classifier.1.weight"],
                       load_shipped().state_dict()["net.classifier.1.weight"])
    assert not (tmp_path / "cache").exists()  # nothing trained, nothing cached

    other = repurpose_config(tiny_mnist, tmp_path, "trainer.max_epochs=4")
    with caplog.at_level(logging.INFO):
        assert frozen.shipped_match(other) is None
    assert "trainer.max_epochs: 4 ≠ 3" in caplog.text
    assert frozen.shipped_match(repurpose_config(tiny_mnist, tmp_path, "task.classifier=train")) is None
    with pytest.raises(ValueError, match=re.escape("task.classifier='pretrained': use one of")):
        frozen.shipped_match(repurpose_config(tiny_mnist, tmp_path, "task.classifier=pretrained"))


@pytest.mark.slow
def test_training_instead_runs_the_shipped_recipe(tiny_mnist, tmp_path, caplog):
    cfg = repurpose_config(tiny_mnist, tmp_path, "task.classifier=train",
                           "trainer.enable_progress_bar=false")
    assert frozen.classifier_recipe(cfg) == shipped_record("mnist_cnn")["recipe"]
    with caplog.at_level(logging.INFO):
        model, path = frozen.frozen_classifier(cfg)
    assert path == frozen.classifier_checkpoint(cfg) and path.is_file()  # trained here, cached
    record = shipped_record("mnist_cnn")
    assert dict(model.hparams) == record["hyper_parameters"]
    epochs = record["recipe"]["trainer"]["max_epochs"]
    assert f"`max_epochs={epochs}` reached" in caplog.text  # every epoch of the recipe ran
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in load_shipped().state_dict().items()}
    assert not torch.equal(model.state_dict()["net.classifier.1.weight"],
                           load_shipped().state_dict()["net.classifier.1.weight"])
