"""Helpers shared by the tasks: Lightning callbacks and loggers from the config, the thread count,
the source dataset's config."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from otdata.config import CONFIG_DIR
from otdata.instantiate import safe_instantiate

log = logging.getLogger(__name__)


def _instantiate_group(group: Mapping | None, kind: str, key: str) -> list:
    """Instantiate every `_target_` entry of a `{name: {_target_: ...}}` config group (`key`),
    through the allow-list of `otdata.instantiate`."""
    objects = []
    if not group:
        return objects
    if not isinstance(group, Mapping | DictConfig):
        raise TypeError(f"the {kind} config must be a mapping of named entries, got {type(group)}.")
    for name, entry in group.items():
        if isinstance(entry, Mapping | DictConfig) and "_target_" in entry:
            log.debug("instantiating %s %s: %s", kind, name, entry["_target_"])
            objects.append(safe_instantiate(entry, key=f"{key}.{name}"))
    return objects


def instantiate_callbacks(cfg: DictConfig) -> list:
    """The Lightning callbacks of `cfg.callbacks` (a dict of `_target_` entries; none → [])."""
    return _instantiate_group(cfg.get("callbacks"), "callback", "callbacks")


def instantiate_loggers(cfg: DictConfig) -> list:
    """The Lightning loggers of `cfg.logger` (a dict of `_target_` entries; none → [])."""
    return _instantiate_group(cfg.get("logger"), "logger", "logger")


def close_loggers(loggers: list) -> None:
    """Finalize the loggers, and end each W&B run here rather than at interpreter exit, where W&B
    prints its closing lines with terminal colour codes even into a log file."""
    for logger in loggers:
        logger.finalize("success")
        run = getattr(logger, "_experiment", None)  # a W&B run, when one was started
        if run is not None and hasattr(run, "finish"):
            run.finish()


@contextlib.contextmanager
def task_threads(cfg: DictConfig) -> Iterator[None]:
    """The block on `task.num_threads` torch threads (unset or null: as they are), restored after:
    one thread per job lets two jobs share two cores without slowing each other."""
    threads = cfg.task.get("num_threads")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def source_config(cfg: DictConfig, name: str) -> DictConfig:
    """The composed config with `source` replaced by `conf/data/<name>.yaml` (+ task.source_overrides)."""
    path = CONFIG_DIR / "data" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml"))
        raise ValueError(f"{name!r} is not a data config; use one of {options}.")
    node = OmegaConf.merge(OmegaConf.load(path), cfg.task.get("source_overrides") or {})
    local = cfg.copy()
    with open_dict(local):
        local.source = node
    return local


def data_settings(**modules) -> dict:
    """Each named datamodule's settings beyond its files (transform, feature step), for a record."""
    return {side: module.settings() for side, module in modules.items()}


def data_note(**modules) -> str:
    """One Markdown line per datamodule whose items are transformed or mapped to features ("" if none)."""
    lines = []
    for side, module in modules.items():
        for key, value in module.settings().items():
            if key != "dataset" and value:
                lines.append(f"{side} ({module.name}) {key}: `{value}`.")
    return " ".join(lines)
