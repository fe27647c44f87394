"""Building, training and loading classifiers (used by tasks and experiments alike).

`build_classifier` instantiates a Classifier config; `load_or_train_classifier` loads a checkpoint
when there is one and trains (and saves) one otherwise. For transfer learning (`experiment=
transferability`): `build` sizes a vector network to its inputs, `transfer_weights` starts a
classifier from pre-trained weights (a new head when the class counts differ), `fit` trains for a
fixed budget without validation and `accuracy` scores it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from otdata.instantiate import safe_instantiate as instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from otdata.console import quiet_vendor_lines
from otdata.models.classifier import Classifier
from otdata.models.progress import PhaseProgressBar

log = logging.getLogger(__name__)

#: Parameter names of the classification head in every otdata network (`net.classifier`).
HEAD_PREFIX = "net.classifier."
HEAD_MODES = ("auto", "reset", "keep")

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
    phase: str = "training the classifier",
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
        phase: what the progress lines call the training (with `trainer.enable_progress_bar`).
    """
    if checkpoint is not None and Path(checkpoint).is_file():
        log.info("Loading the classifier from %s", checkpoint)
        loaded = Classifier.load_from_checkpoint(str(checkpoint), map_location=map_location)
        loaded.eval()
        return loaded, Path(checkpoint)
    if datamodule is None:
        raise ValueError(f"No checkpoint at {checkpoint}, and no datamodule to train one on.")

    quiet_vendor_lines()  # no vendor adverts or srun hint on the Python API path either
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
    callbacks = [*trainer_kwargs.get("callbacks", []), checkpointing]
    if trainer_kwargs["enable_progress_bar"] and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(PhaseProgressBar(phase))  # log lines with the time left off a terminal
    trainer_kwargs["callbacks"] = callbacks
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


def build(model_cfg: Mapping | DictConfig, num_classes: int, X: torch.Tensor,
          image_size: int | None = None) -> Classifier:
    """A fresh classifier for inputs like `X`: `build_classifier` plus `net.in_features` (vector
    networks) set from `X`."""
    cfg = OmegaConf.create(config_dict(model_cfg))
    net = cfg.get("net")
    if isinstance(net, DictConfig) and "in_features" in net:
        net.in_features = int(X[0].numel())
    return build_classifier(cfg, num_classes=num_classes, image_size=image_size)


def transfer_weights(pretrained: Classifier, model: Classifier, head: str = "auto") -> list[str]:
    """Copy every pre-trained parameter/buffer into `model` whose name and shape match.

    `head`: "auto" copies the head too when its shape matches (same class count) and keeps the new,
    randomly initialised head otherwise; "reset" never copies the head; "keep" insists on copying it
    (an error when the class counts differ). Returns the names that were *not* copied.
    """
    if head not in HEAD_MODES:
        raise ValueError(f"head must be one of {HEAD_MODES}, got {head!r}.")
    source, target = pretrained.state_dict(), model.state_dict()
    copied, skipped = {}, []
    for name, value in target.items():
        theirs = source.get(name)
        is_head = name.startswith(HEAD_PREFIX)
        if theirs is None or theirs.shape != value.shape or (is_head and head == "reset"):
            if is_head and head == "keep":
                raise ValueError(f"head='keep' but {name} has shape {tuple(value.shape)} here and "
                                 f"{None if theirs is None else tuple(theirs.shape)} pre-trained.")
            skipped.append(name)
        else:
            copied[name] = theirs
    model.load_state_dict(copied, strict=False)
    return skipped


@contextlib.contextmanager
def quiet_lightning():
    """Silence Lightning's per-Trainer info lines (device summary, ...) for many small fits."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def trainer_kwargs(trainer: Mapping | DictConfig | None, root: str | Path, **overrides) -> dict:
    """Keyword arguments for `lightning.Trainer` from a trainer config, with no logger, no
    checkpointing, no progress bar and no validation, plus `overrides`."""
    kwargs = config_dict(trainer)
    kwargs.pop("_target_", None)
    kwargs.update(default_root_dir=str(root), logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, callbacks=[],
                  limit_val_batches=0, num_sanity_val_steps=0)
    kwargs.update(overrides)
    return kwargs


def fit(model: Classifier, X: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int,
        trainer: Mapping | DictConfig | None = None, root: str | Path = ".", seed: int = 0) -> Classifier:
    """Train `model` on `(X, y)` for exactly `epochs` epochs (shuffled with `seed`; no validation)."""
    loader = DataLoader(TensorDataset(X, y), batch_size=int(batch_size), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    with quiet_lightning():
        L.Trainer(**trainer_kwargs(trainer, root, max_epochs=int(epochs), min_epochs=int(epochs))
                  ).fit(model, train_dataloaders=loader)
    return model.eval()


def accuracy(model: Classifier, X: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy in percent."""
    return 100.0 * model.accuracy(X, y)
