"""`task=train`: fit `model` on `data`, then test the best checkpoint (by `val/acc`).

Writes into the run folder (`metrics.json` and `train.csv/.md` all at once, when both are complete;
`UNFINISHED` marks a run that did not get there; Lightning's `checkpoints/` and `csv/` as it trains):
  metrics.json             test and best validation metrics, checkpoint path, seconds, settings
  train.csv / .md          a one-row summary table
  checkpoints/best.ckpt    the best checkpoint (from the `callbacks` config's ModelCheckpoint)
  checkpoints/last.ckpt    the state after the last finished epoch, RNG states included:
                           `task.resume=true hydra.run.dir=<that folder>` continues a killed run and
                           ends with the same weights and numbers as an uninterrupted one (CPU)

Determinism: the same seed, data, recipe, torch version, CPU type and thread count give the same
weights bit for bit. Changing the thread count (`OMP_NUM_THREADS`, `torch.set_num_threads`) changes
the order of floating-point sums inside convolutions and so the weights slightly (a few hundredths
of a percent of test accuracy); GPU runs are reproducible only with `trainer.deterministic=true`.

`otdata.models.load_or_train_classifier` is the same thing as a function, for experiments.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from otdata.instantiate import safe_instantiate as instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf

from otdata.rng import rng_state, set_rng_state
from otdata.models import build_classifier
from otdata.models.progress import PhaseProgressBar
from otdata.tables import write_table
from otdata.tasks.common import close_loggers, instantiate_callbacks, instantiate_loggers
from otdata.tasks.rundir import run_folder

log = logging.getLogger(__name__)


class ResumeRNG(Callback):
    """Stores the global torch / numpy / python RNG states in every checkpoint and restores them
    when a fit resumes from it, so that shuffling, dropout and augmentation draw the same numbers as
    in an uninterrupted run (Lightning restores weights, optimizer and loops, not the RNGs)."""

    def state_dict(self) -> dict:
        return {"rng": rng_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        if "rng" in state_dict:
            set_rng_state(state_dict["rng"])


def _checkpointing(callbacks: list, out: Path) -> list:
    """Make every ModelCheckpoint also keep `last.ckpt` (add one when there is none)."""
    checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    for c in checkpoints:
        c.save_last = True
    if not checkpoints:
        callbacks = [*callbacks, ModelCheckpoint(dirpath=out / "checkpoints", save_last=True,
                                                 save_top_k=0)]
    return [*callbacks, ResumeRNG()]


def _resume_from(cfg: DictConfig, out: Path) -> str | None:
    """`checkpoints/last.ckpt` of the run folder when `task.resume` is set."""
    if not cfg.task.get("resume"):
        return None
    last = out / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("Resuming from %s", last)
        return str(last)
    log.warning("task.resume=true but %s does not exist: training from the start.", last)
    return None


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
    """Train and test; `metrics.json` and `train.csv/.md` appear in the run folder together, once
    both are written (:func:`otdata.tasks.rundir.run_folder`). Lightning writes `checkpoints/` and
    its `csv/` logs into the run folder as it trains: `task.resume=true` continues from them."""
    with run_folder(cfg.paths.output_dir) as stage:
        return _run(cfg, stage)


def _run(cfg: DictConfig, stage: Path) -> dict:
    out = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = build_classifier(cfg.model, num_classes=datamodule.num_classes,
                             image_size=getattr(datamodule, "image_size", None))
    callbacks = instantiate_callbacks(cfg)
    if not cfg.trainer.get("enable_progress_bar", True):  # `trainer.enable_progress_bar=false`
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    elif not any(isinstance(c, ProgressBar) for c in callbacks):  # e.g. callbacks=none: not tqdm's
        callbacks.append(PhaseProgressBar("training"))            # bar, which a log file garbles
    callbacks = _checkpointing(callbacks, out)
    loggers = instantiate_loggers(cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=_resume_from(cfg, out))
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
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        shutil.copyfile(best, partial)  # then renamed: a killed copy never looks like a checkpoint
        os.replace(partial, target)
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
    (stage / "metrics.json").write_text(json.dumps(record, indent=2))
    write_table([summary], stage / "train")
    close_loggers(loggers)
    log.info("%s on %s: test acc %.4f (%.0f s) → %s", summary["model"], summary["data"],
             summary["test_acc"], seconds, out)
    return {**summary, "objective": summary["test_acc"]}
