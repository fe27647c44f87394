"""Typed schemas (Hydra structured configs) of the task configs.

Each `conf/task/<name>.yaml` starts from its schema here (`defaults: [/schema/task/<name>@task]`),
so a wrong value is refused when the config is composed, with the key and the expected type:
`task.n_source=abc` gives "Value 'abc' of type 'str' could not be converted to Integer ...
full_key: task.n_source" instead of a trace from deep inside a run. The YAML files keep the default
values (`MISSING` here): a value is declared in one place only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

__all__ = ["DistanceTask", "FlowTask", "TrainTask", "register"]


@dataclass
class DistanceTask:
    """`task=distance`: sizes are stratified subsample sizes (null = the whole split)."""

    name: str = MISSING
    split: str = MISSING           # train | test (checked by the datamodule)
    n_source: Optional[int] = MISSING  # noqa: UP007 (OmegaConf reads typing.Optional)
    n_target: Optional[int] = MISSING  # noqa: UP007


@dataclass
class FlowTask(DistanceTask):
    """`task=flow`: as `task=distance`, plus resuming from the run folder's checkpoints and the
    target classifier that scores the flowed particles (null: the one `experiment=repurpose`
    cached for this target, if any)."""

    resume: bool = MISSING
    classifier_ckpt: Optional[str] = MISSING  # noqa: UP007


@dataclass
class TrainTask:
    """`task=train`: `resume` continues from the run folder's `checkpoints/last.ckpt`."""

    name: str = MISSING
    save_checkpoint_to: Optional[str] = MISSING  # noqa: UP007
    resume: bool = MISSING


SCHEMAS = {"distance": DistanceTask, "flow": FlowTask, "train": TrainTask}


def register() -> None:
    """Store the schemas as `schema/task/<name>` in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(group="schema/task", name=name, node=node)
