"""`task=train`: fit `model` on `data`, then test the best checkpoint (by `val/acc`).

Writes into the run folder:
  metrics.json             test and best validation metrics, checkpoint path, seconds, settings
  train.csv / .md          a one-row summary table
  checkpoints/best.ckpt    the best checkpoint (from the `callbacks` config's ModelCheckpoint)

`load_or_train_classifier` is the same thing as a function, for experiments that need a
classifier: it loads a checkpoint when there is one and trains (and saves) one otherwise.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf

from otdata.models import Classifier
from otdata.tables import write_table
from otdata.tasks.common import instantiate_callbacks, instantiate_loggers

log = logging.getLogger(__name__)

#: The classifier `load_or_train_classifier` builds when given no model config (= conf/model/cnn.yaml).
DEFAULT_MODEL: dict[str, Any] = {
    "_target_": "otdata.models.Classifier",
    "net": {"_target_": "otdata.models.SmallCNN", "channels": [32, 64]},
    "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "scheduler": "onecycle",
    "augment_shift": 1,
}


def _container(cfg: Mapping | DictConfig | None) -> dict:
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
    cfg = OmegaConf.create(_container(model_cfg))
    net = cfg.get("net")
    if isinstance(net, DictConfig):
        if num_classes is not None and "_target_" in net:
            net.num_classes = int(num_classes)
        if image_size is not None and "image_size" in net:
            net.image_size = int(image_size)
    return instantiate(cfg)


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return path if path and Path(path).is_file() else None


def _scalar_metrics(metrics: Mapping) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, int | float):
            out[key] = float(value)
    return out


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = build_classifier(cfg.model, num_classes=datamodule.num_classes,
                             image_size=getattr(datamodule, "image_size", None))
    callbacks = instantiate_callbacks(cfg)
    if not cfg.trainer.get("enable_progress_bar", True):  # `trainer.enable_progress_bar=false`
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = instantiate_loggers(cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    fit_seconds = time.perf_counter() - start
    val_metrics = _scalar_metrics(trainer.callback_metrics)
    best = _best_checkpoint(trainer)
    if best is None:
        log.warning("No checkpoint was saved: testing the final weights.")
    tested = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
    test_metrics = _scalar_metrics(tested[0] if tested else {})
    seconds = time.perf_counter() - start

    checkpoint = best
    if best is not None and cfg.task.get("save_checkpoint_to"):
        target = Path(cfg.task.save_checkpoint_to)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, target)
        checkpoint = str(target)
        log.info("Copied the best checkpoint to %s", target)

    callback = trainer.checkpoint_callback
    best_val = getattr(callback, "best_model_score", None) if callback is not None else None
    summary = {
        "data": getattr(datamodule, "name", type(datamodule).__name__),
        "model": type(model.net).__name__,
        "test_acc": test_metrics.get("test/acc", float("nan")),
        "test_loss": test_metrics.get("test/loss", float("nan")),
        "best_val_acc": float(best_val) if best_val is not None else val_metrics.get("val/acc",
                                                                                     float("nan")),
        "epochs": int(trainer.current_epoch),
        "fit_seconds": fit_seconds,
        "seconds": seconds,
        "checkpoint": checkpoint or "",
    }
    record = {
        **summary,
        "val_metrics": val_metrics,
        "test_metrics": test_metrics,
        "settings": {
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "data": OmegaConf.to_container(cfg.data, resolve=True),
            "trainer": OmegaConf.to_container(cfg.trainer, resolve=True),
            "seed": cfg.seed,
        },
    }
    (out / "metrics.json").write_text(json.dumps(record, indent=2))
    write_table([summary], out / "train")
    log.info("%s on %s: test acc %.4f (%.0f s) → %s", summary["model"], summary["data"],
             summary["test_acc"], seconds, out)
    return {**summary, "objective": summary["test_acc"]}


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
    trainer_kwargs = _container(trainer)
    trainer_kwargs.pop("_target_", None)
    trainer_kwargs.setdefault("default_root_dir", str(out_dir))
    trainer_kwargs.setdefault("accelerator", "cpu")
    trainer_kwargs.setdefault("enable_progress_bar", False)
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
