"""task=train end to end on a tiny data root, and load_or_train_classifier."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from otdata.config import CONFIG_DIR
from otdata.data import MNISTDataModule
from otdata.models import Classifier
from otdata.tasks.common import instantiate_callbacks, instantiate_loggers
from otdata.models import load_or_train_classifier
from otdata.tasks.train import run
from tests.fixtures import compose_config

TINY_MODEL = ["model.net.channels=[4,8]", "model.net.hidden=16"]
FAST_TRAINER = ["trainer.max_epochs=1", "trainer.accelerator=cpu",
                "trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false"]


def compose_train(overrides: list[str], output_dir) -> OmegaConf:
    return compose_config(["task=train", *overrides], output_dir)


def test_task_train_uses_the_mnist_trainer(tmp_path):
    cfg = compose_train([], tmp_path)
    expected = OmegaConf.load(CONFIG_DIR / "trainer" / "mnist.yaml").max_epochs
    assert cfg.task.name == "train" and cfg.trainer.max_epochs == expected
    assert cfg.trainer._target_ == "lightning.Trainer"


def test_run_writes_metrics_table_and_checkpoint(data_root, tmp_path):
    copy = tmp_path / "kept" / "classifier.ckpt"
    cfg = compose_train(
        [f"paths.data_dir={data_root}", *TINY_MODEL, *FAST_TRAINER,
         f"task.save_checkpoint_to={copy}"], tmp_path / "run",
    )
    result = run(cfg)
    out = tmp_path / "run"
    assert (out / "checkpoints" / "best.ckpt").is_file() and copy.is_file()
    record = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= record["test_acc"] <= 1.0 and record["data"] == "MNIST"
    assert record["model"] == "SmallCNN" and record["checkpoint"] == str(copy)
    assert (out / "train.csv").is_file() and (out / "train.md").is_file()
    assert result["objective"] == result["test_acc"] == record["test_acc"]
    assert list((out / "csv").rglob("metrics.csv"))  # the csv logger ran

    loaded = Classifier.load_from_checkpoint(copy)
    assert list(loaded.net.init_args["channels"]) == [4, 8]


def test_group_helpers(tmp_path):
    cfg = compose_train(["logger=none", "callbacks=none"], tmp_path)
    assert instantiate_callbacks(cfg) == [] and instantiate_loggers(cfg) == []
    cfg = compose_train([], tmp_path)
    assert any(isinstance(c, ModelCheckpoint) for c in instantiate_callbacks(cfg))
    assert len(instantiate_loggers(cfg)) == 1


def test_load_or_train_classifier(data_root, tmp_path):
    dm = MNISTDataModule(data_dir=data_root, batch_size=64)
    path = tmp_path / "models" / "mnist.ckpt"
    model_cfg = {"_target_": "otdata.models.Classifier",
                 "net": {"_target_": "otdata.models.SmallCNN", "channels": [4, 8], "hidden": 16}}
    trained, got = load_or_train_classifier(
        dm, path, model=model_cfg, trainer={"max_epochs": 1, "enable_model_summary": False},
        out_dir=tmp_path / "work",
    )
    assert got == path and path.is_file() and not trained.training
    X, _ = dm.tensors("test")

    loaded, got_again = load_or_train_classifier(None, path)  # no training: it exists
    assert got_again == path
    assert torch.equal(loaded.predict(X), trained.predict(X))

    with pytest.raises(ValueError):
        load_or_train_classifier(None, tmp_path / "missing.ckpt")


def test_build_classifier_resolves_against_the_whole_config(tmp_path):
    from otdata.models import build_classifier, config_dict

    cfg = compose_train(["data=usps", "data.image_size=16", "model=lenet"], tmp_path)
    model = build_classifier(cfg.model, num_classes=7)
    assert model.net.image_size == 16 and model.num_classes == 7
    assert config_dict(cfg.trainer)["default_root_dir"] == str(tmp_path)  # ${paths.output_dir}
