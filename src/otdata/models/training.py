"""Building, training and loading classifiers (used by tasks and experiments alike).

`build_classifier` instantiates a Classifier config; `load_or_train_classifier` loads a checkpoint
when there is one and trains (and saves) one otherwise.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from otdata.instantiate import safe_instantiate as instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from otdata.models.classifier import Classifier

log = logging.getLogger(__name__)

#: The classifier `load_or_train_classifier` builds when given no model config (= conf/model/cnn.yaml).
DEFAULT_MODEL: dict[str, Any] = {
    "_target_": "otdata.models.Classifier",
    "net": {"_target_": "otdata.models.SmallCNN", "channels": [32, 64]},
    "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "scheduler": "onecycle",
    "augment_shift": 1,
}


def config_dict(cfg: Mapping | DictConfig | None) -> dict:
    """A plain, resolved dict of a config node (interpolations resolve against its root config)."""
    if cfg is None:
        return {}
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(dict(cfg))
    return OmegaConf.to_container(cfg, resolve=True)


def build_classifier(model_cfg: Mapping | DictConfig, num_classes: int | None = None,
                     image_size: int | None = None) -> Classifier:
    """Instantiate a Classifier config, setting its net's `num_classes` / `image_size` when the
    net config has those keys."""
    cfg = OmegaConf.create(config_dict(model_cfg))
    net = cfg.get("net")
    if isinstance(net, DictConfig):
        if num_classes is not None and "_target_" in net:
            net.num_classes = int(num_classes)
        if image_size is not None and "image_size" in net:
            net.image_size = int(image_size)
    return instantiate(cfg)



def load_or_train_classifier(
    datamodule: L.LightningDataModule | None = None,
    checkpoint: str | Path | None = None,
    *,
    model: Classifier | Mapping | DictConfig | None = None,
    trainer: Mapping | DictConfig | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    map_location: str | torch.device = "cpu",
) -> tuple[Classifier, Path]:
    """A trained classifier and its checkpoint path.

    If `checkpoint` names an existing file, it is loaded (`Classifier.load_from_checkpoint`) and
    nothing is trained. Otherwise a classifier is trained on `datamodule`, the best checkpoint by
    `val/acc` is loaded, copied to `checkpoint` (when given) and returned.

    Args:
        datamodule: the labeled datamodule to train on (only needed when training).
        checkpoint: where the checkpoint is / should end up.
        model: a Classifier instance, or a Classifier config (Hydra `_target_` dict, e.g.
            `cfg.model`); default: the small CNN of conf/model/cnn.yaml.
        trainer: a `lightning.Trainer` config (`_target_` optional) or keyword arguments, e.g.
            `cfg.trainer` or `{"max_epochs": 6}`; logger and checkpointing are set here.
        out_dir: folder for the training checkpoints (default: next to `checkpoint`, or a
            `classifier/` folder in the working directory).
        seed: seeds everything before training.
    """
    if checkpoint is not None and Path(checkpoint).is_file():
        log.info("Loading the classifier from %s", checkpoint)
        loaded = Classifier.load_from_checkpoint(str(checkpoint), map_location=map_location)
        loaded.eval()
        return loaded, Path(checkpoint)
    if datamodule is None:
        raise ValueError(f"No checkpoint at {checkpoint}, and no datamodule to train one on.")

    L.seed_everything(seed, workers=True)
    if isinstance(model, Classifier):
        classifier = model
    else:
        classifier = build_classifier(model if model is not None else DEFAULT_MODEL,
                                      num_classes=getattr(datamodule, "num_classes", None))
    if out_dir is None:
        out_dir = (Path(checkpoint).with_suffix("") if checkpoint is not None
                   else Path("classifier"))
    out_dir = Path(out_dir)
    trainer_kwargs = config_dict(trainer)
    trainer_kwargs.pop("_target_", None)
    trainer_kwargs.setdefault("default_root_dir", str(out_dir))
    trainer_kwargs.setdefault("accelerator", "cpu")
    trainer_kwargs.setdefault("enable_progress_bar", False)
    trainer_kwargs.setdefault("enable_model_summary", False)  # the log names the model; no table
    trainer_kwargs["logger"] = False
    trainer_kwargs["enable_checkpointing"] = True
    checkpointing = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best",
                                    monitor="val/acc", mode="max", save_top_k=1)
    trainer_kwargs["callbacks"] = [*trainer_kwargs.get("callbacks", []), checkpointing]
    fit = L.Trainer(**trainer_kwargs)
    fit.fit(classifier, datamodule=datamodule)

    best = Path(checkpointing.best_model_path) if checkpointing.best_model_path else None
    if best is None or not best.is_file():
        best = out_dir / "checkpoints" / "last.ckpt"
        fit.save_checkpoint(best)
    if checkpoint is not None:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, checkpoint)
        best = Path(checkpoint)
    loaded = Classifier.load_from_checkpoint(str(best), map_location=map_location)
    loaded.eval()
    return loaded, best
