"""The columns of `experiment=kshot`, each computed on one seed's draw.

A :class:`Draw` is what every column of a seed shares: the k-shot target items (exactly `k` of
every class, :func:`otdata.data.subsample.per_class_indices`), the labeled source sample
(`n_source` of every class) and the class matching that gives each source class the target label it
stands for. Every column then trains the same classifier recipe (:class:`Recipe`, a fixed budget
through :func:`otdata.models.training.fit`) and scores it on the target's test split:

* ``target_only``: the k shots alone;
* ``source``: the source sample, relabelled by the matching, plus the k shots (no flow);
* ``finetune``: a classifier pre-trained on the source, fine-tuned on the k shots;
* ``flow_<name>``: the source sample flowed toward the k shots (a :class:`~otdata.flows.DatasetFlow`
  with one objective), relabelled by the matching, plus the k shots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from otdata.data.subsample import per_class_indices
from otdata.flows import FlowResult, needs_label_distances, resolve_correspondence
from otdata.instantiate import safe_instantiate as instantiate
from otdata.models import Classifier
from otdata.models.training import accuracy, build, fit, transfer_weights
from otdata.tasks.transfer_data import Dataset

BASELINES = ("target_only", "source", "finetune")
#: Flow settings a `task.flows` entry may set for its own column (e.g. a shorter flow).
FLOW_KEYS = ("steps", "step_size")


@dataclass
class Draw:
    """One seed's data: the k shots, the source sample and the class matching."""

    seed: int
    X_shots: torch.Tensor
    y_shots: torch.Tensor
    X_source: torch.Tensor
    y_source: torch.Tensor
    matching: dict[int, int]

    def relabel(self) -> torch.Tensor:
        """The source sample's labels in the target's classes (through the matching)."""
        return torch.tensor([self.matching[int(c)] for c in self.y_source], dtype=self.y_shots.dtype)

    def with_shots(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`X` (source-sample rows, possibly flowed) under their matched labels, plus the k shots."""
        return torch.cat([X, self.X_shots]), torch.cat([self.relabel(), self.y_shots])


@dataclass
class Recipe:
    """The one training budget every column uses (and the place it writes Lightning's files)."""

    model: Any
    trainer: Any
    epochs: int
    batch_size: int
    root: Path

    def train(self, X: torch.Tensor, y: torch.Tensor, num_classes: int, image_size: int | None,
              seed: int, start: Classifier | None = None, head: str = "reset") -> Classifier:
        """A fresh classifier (or one started from `start`'s weights) trained on `(X, y)`."""
        L.seed_everything(seed, workers=True, verbose=False)
        model = build(self.model, num_classes, X, image_size)
        if start is not None:
            transfer_weights(start, model, head=head)
        return fit(model, X, y, epochs=self.epochs, batch_size=self.batch_size, trainer=self.trainer,
                   root=self.root, seed=seed)


def draw(cfg: DictConfig, source: Dataset, target: Dataset, seed: int) -> Draw:
    """The k-shot target items and the source sample of `seed`, and the class matching between them."""
    shots = _per_class(target, "shots", int(cfg.task.shots), seed)
    sample = _per_class(source, "n_source", int(cfg.task.n_source), seed)
    Xk, yk = target.X[shots], target.y[shots]
    Xs, ys = source.X[sample], source.y[sample]
    return Draw(seed, Xk, yk, Xs, ys, match(cfg, Xs, ys, Xk, yk))


def _per_class(data: Dataset, key: str, k: int, seed: int) -> torch.Tensor:
    """`per_class_indices`, with an error that names the setting and the dataset."""
    try:
        return per_class_indices(data.y, k, seed)
    except ValueError as error:
        raise ValueError(f"task.{key}={k} on {data.name}'s training split: {error}") from None


def match(cfg: DictConfig, Xs, ys, Xk, yk) -> dict[int, int]:
    """Source class -> target class, from `flow.correspondence` (`auto` and friends: from the label
    distances of the `distance` group between the source sample and the k shots)."""
    spec = cfg.flow.correspondence
    spec = OmegaConf.to_container(spec) if isinstance(spec, DictConfig) else spec
    src, tgt = torch.unique(ys).tolist(), torch.unique(yk).tolist()
    W = None
    if needs_label_distances(spec):
        distance = instantiate(cfg.distance)
        W = distance.label_distances(distance.prepare(Xs, ys), distance.prepare(Xk, yk))
    matching = resolve_correspondence(spec, src, tgt, W=W)
    if matching is None:
        raise ValueError(
            "task=kshot trains on the flowed particles under the target class each source class is "
            f"matched with, and flow.correspondence={spec!r} matches none: set flow.correspondence="
            "auto (from the label distances), identity, or a mapping {source_class: target_class}.")
    return matching


def flow(cfg: DictConfig, objective: Any, data: Draw) -> FlowResult:
    """The source sample flowed toward the k shots by the `flow` group with `objective`, on the
    seed's matching (no checkpoints, trajectory or progress bar: many short flows). A mapping may
    also set the flow's own `steps` and `step_size` (:data:`FLOW_KEYS`) for this column."""
    objective = OmegaConf.to_container(objective) if isinstance(objective, DictConfig) else objective
    settings = {}
    if isinstance(objective, dict):
        settings = {k: objective[k] for k in FLOW_KEYS if k in objective}
        objective = {k: v for k, v in objective.items() if k not in FLOW_KEYS}
    engine = instantiate(cfg.flow, objective=objective, correspondence=dict(data.matching),
                         seed=data.seed, progress=False, checkpoint_every=0, trajectory_every=0, **settings)
    return engine.run(data.X_source, data.y_source, target=(data.X_shots, data.y_shots))


def nearest_shot_agreement(X: torch.Tensor, labels: torch.Tensor, Xk: torch.Tensor,
                           yk: torch.Tensor) -> float:
    """Share (%) of the rows of `X` whose nearest k-shot item (Euclidean) has their label: do the
    flowed particles sit with the class their label names?"""
    nearest = torch.cdist(X.float(), Xk.float()).argmin(1)
    return 100.0 * float((yk[nearest] == labels).float().mean())


def column_names(objectives) -> list[str]:
    """The column of each flow objective: `flow_<name>`, `flow_<name>_<steps>steps` when the entry
    sets its own steps (`flow_<name>_2`, ... for a name given twice)."""
    names = []
    for objective in objectives:
        name = objective if isinstance(objective, str) else (
            objective.get("name") if hasattr(objective, "get") else None)
        if not isinstance(name, str):
            raise ValueError(f"task.flows entries are objective names (otdd, mmd, sliced) or mappings "
                             f"{{name: ..., weight: ...}}, got {objective!r}.")
        if not isinstance(objective, str) and objective.get("steps") is not None:
            name = f"{name}_{objective.get('steps')}steps"
        column, i = f"flow_{name}", 2
        while column in names:
            column, i = f"flow_{name}_{i}", i + 1
        names.append(column)
    return names


def timed(function, *args, **kwargs) -> tuple[Any, float]:
    """`function(*args, **kwargs)` and the seconds it took."""
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def score(model: Classifier, target: Dataset) -> float:
    """Accuracy (%) on the target's test split."""
    return accuracy(model, target.X_test, target.y_test)
