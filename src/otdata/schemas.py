"""Typed schemas (Hydra structured configs) of the task configs and of the config groups.

Each `conf/task/<name>.yaml` starts from its schema here (`defaults: [/schema/task/<name>@task]`),
and so do the `distance`, `flow`, `model` and `paths` options (`/schema/<group>/<name>@_here_`), so a wrong
value is refused when the config is composed, with the key and the expected type:
`task.n_source=abc` gives "Value 'abc' of type 'str' could not be converted to Integer ...
full_key: task.n_source" instead of a trace from deep inside a run. The YAML files keep the default
values (`MISSING` here): a value is declared in one place only. A schema lists the keys its YAML
file sets; a constructor argument the file does not list is added with `+` (`+distance.tol=1e-6`)
and checked by the constructor (:mod:`otdata.checks`).

The groups whose options build a third-party or per-format class (`data`: 21 formats, their
`features`, `trainer`, `logger`, `callbacks`, `model.net`, and `debug`, which merges trainer and
data keys) are typed by that class's own constructor, also when the config is composed, without a
dataclass that would add the keys a YAML file leaves to the class's defaults: `otdata.class_schemas`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035 (OmegaConf reads typing generics)

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

__all__ = ["DistanceTask", "FlowTask", "TrainTask", "RepurposeTask", "TransferabilityTask",
           "DistanceMatrixTask", "ExploreTask", "KShotTask",
           "OTDDConfig", "SlicedConfig", "FlowConfig", "ClassifierConfig", "PathsConfig", "register"]


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


@dataclass
class LearnedMapSettings:
    """`task.learned_map` of `task=repurpose` (:class:`otdata.flows.learned_map.LearnedMap`)."""

    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    pixel_weight: float = MISSING
    teacher_weight: float = MISSING
    augment_shift: int = MISSING
    channels: List[int] = MISSING  # noqa: UP006
    code: int = MISSING
    progress: bool = MISSING


@dataclass
class BaselineSettings:
    """`task.baseline` of `task=repurpose`: the from-scratch classifier on the flowed sample."""

    epochs: int = MISSING
    batch_size: int = MISSING


@dataclass
class RepurposeTask:
    """`task=repurpose`: `sources` is one data config name or a list of them."""

    name: str = MISSING
    sources: Any = MISSING
    source_overrides: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    n_flow: Optional[int] = MISSING  # noqa: UP007
    n_target: Optional[int] = MISSING  # noqa: UP007
    n_test: Optional[int] = MISSING  # noqa: UP007
    extension: str = MISSING
    extension_k: int = MISSING
    protocols: List[str] = MISSING  # noqa: UP006
    match: str = MISSING
    classifier: str = MISSING
    classifier_ckpt: Optional[str] = MISSING  # noqa: UP007
    classifier_seed: Optional[int] = MISSING  # noqa: UP007
    strict: bool = MISSING
    learned_map: LearnedMapSettings = field(default_factory=LearnedMapSettings)
    baseline: BaselineSettings = field(default_factory=BaselineSettings)


@dataclass
class TransferabilityTask:
    """`task=transferability`: `pairs` is `all`, `augmentations` or a list of `[source, target]`
    names; `subsets`, `augmentations`, `compare` and `model` hold nested configs (checked where they
    are built)."""

    name: str = MISSING
    datasets: List[str] = MISSING  # noqa: UP006
    pairs: Any = MISSING
    pair_index: Optional[int] = MISSING  # noqa: UP007
    subsets: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    augmentations: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    augment_source: Optional[str] = MISSING  # noqa: UP007
    target: Optional[str] = MISSING  # noqa: UP007
    source_overrides: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    model: Any = MISSING
    head: str = MISSING
    freeze: List[str] = MISSING  # noqa: UP006
    n_pool: Optional[int] = MISSING  # noqa: UP007
    n_test: Optional[int] = MISSING  # noqa: UP007
    n_distance: Optional[int] = MISSING  # noqa: UP007
    distances: str = "matrix"
    representation: str = MISSING
    representations: List[str] = MISSING  # noqa: UP006
    normalization: Dict[str, float] = MISSING  # noqa: UP006
    feature_source: str = MISSING
    compare: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    n_pretrain: Optional[int] = MISSING  # noqa: UP007
    pretrain_epochs: int = MISSING
    pretrain_batch_size: int = MISSING
    n_finetune: int = MISSING
    finetune_epochs: int = MISSING
    finetune_batch_size: int = MISSING
    seeds: List[int] = MISSING  # noqa: UP006
    outcome: str = MISSING
    cache_dir: Optional[str] = MISSING  # noqa: UP007
    collect: Optional[str] = MISSING  # noqa: UP007
    strict: bool = MISSING
    num_threads: Optional[int] = MISSING  # noqa: UP007


@dataclass
class DistanceMatrixTask:
    """`task=distance_matrix`: every pair of `datasets` (data config names), `n` items each."""

    name: str = MISSING
    datasets: List[str] = MISSING  # noqa: UP006
    split: str = MISSING
    n: Optional[int] = MISSING  # noqa: UP007
    source_overrides: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    cache_dir: Optional[str] = MISSING  # noqa: UP007
    submit: bool = MISSING


@dataclass
class ExploreTask:
    """`task=explore` (`otdata explore`): where the page is served, the user's datasets for its
    pickers (`{name: {config: <data option>, ...}}`), its first sizes and its cache."""

    name: str = MISSING
    host: str = MISSING
    port: Optional[int] = MISSING  # noqa: UP007
    open_browser: bool = MISSING
    datasets: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    per_class: int = MISSING
    max_per_class: int = MISSING
    flow_steps: int = MISSING
    flow_per_class: int = MISSING
    cache_size: int = MISSING
    classifier_ckpt: Optional[str] = MISSING  # noqa: UP007


@dataclass
class KShotTask:
    """`task=kshot`: `flows` holds flow objectives (names or mappings, checked by the flow),
    `model` a classifier config or null."""

    name: str = MISSING
    shots: int = MISSING
    n_source: int = MISSING
    flows: List[Any] = MISSING  # noqa: UP006
    baselines: List[str] = MISSING  # noqa: UP006
    seeds: Optional[List[int]] = MISSING  # noqa: UP006, UP007
    n_test: Optional[int] = MISSING  # noqa: UP007
    model: Any = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    head: str = MISSING
    n_pretrain: Optional[int] = MISSING  # noqa: UP007
    pretrain_epochs: int = MISSING
    pretrain_batch_size: int = MISSING
    cache_dir: Optional[str] = MISSING  # noqa: UP007
    num_threads: Optional[int] = MISSING  # noqa: UP007


@dataclass
class OTDDConfig:
    """`distance=gaussian|means|exact` (:class:`otdata.distance.DatasetDistance`)."""

    _target_: str = MISSING
    label_distance: str = MISSING
    p: float = MISSING
    debiased: bool = MISSING
    lambda_x: float = MISSING
    lambda_y: float = MISSING
    epsilon: float = MISSING
    relative: bool = MISSING
    strict: bool = MISSING


@dataclass
class SlicedConfig:
    """`distance=sliced` (:class:`otdata.distance.SlicedDatasetDistance`)."""

    _target_: str = MISSING
    n_projections: int = MISSING
    n_moments: int = MISSING
    p: float = MISSING
    seed: int = MISSING
    chunk: int = MISSING


@dataclass
class FlowConfig:
    """`flow=default` (:class:`otdata.flows.DatasetFlow`); `objective`, `correspondence` and
    `distance` take several forms (a name, a mapping, a config) and are checked by the flow."""

    _target_: str = MISSING
    objective: Any = MISSING
    labels: str = MISSING
    optimizer: str = MISSING
    step_size: float = MISSING
    steps: int = MISSING
    tol: float = MISSING
    clamp: Optional[List[float]] = MISSING  # noqa: UP006, UP007
    correspondence: Any = MISSING
    checkpoint_every: int = MISSING
    trajectory_every: int = MISSING
    trajectory_particles: Optional[int] = MISSING  # noqa: UP007
    seed: int = MISSING
    device: str = MISSING
    dtype: str = MISSING
    progress: bool = MISSING
    distance: Any = MISSING
    label_update_every: int = MISSING


@dataclass
class ClassifierConfig:
    """`model=cnn|lenet|resnet` (:class:`otdata.models.Classifier`); `net` is the network's own
    config (its `_target_` and sizes, set from the data by `task=train`)."""

    _target_: str = MISSING
    net: Any = MISSING
    optimizer: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    momentum: float = MISSING
    scheduler: str = MISSING
    pct_start: float = MISSING
    label_smoothing: float = MISSING
    augment_shift: int = MISSING


@dataclass
class PathsConfig:
    """`paths=default`: where data, encoders and caches are read and results written."""

    data_dir: str = MISSING
    models_dir: str = MISSING
    cache_dir: str = MISSING
    output_dir: str = MISSING


SCHEMAS = {
    "task": {"distance": DistanceTask, "flow": FlowTask, "train": TrainTask,
             "repurpose": RepurposeTask, "transferability": TransferabilityTask,
             "distance_matrix": DistanceMatrixTask, "explore": ExploreTask, "kshot": KShotTask},
    "distance": {"otdd": OTDDConfig, "sliced": SlicedConfig},
    "flow": {"default": FlowConfig},
    "model": {"classifier": ClassifierConfig},
    "paths": {"default": PathsConfig},
}


def register() -> None:
    """Store the schemas as `schema/<group>/<name>` in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            store.store(group=f"schema/{group}", name=name, node=node)
