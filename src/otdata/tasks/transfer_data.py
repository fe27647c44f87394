"""The datasets of the transferability experiment, loaded once per run.

A :class:`Dataset` is one dataset in memory (a training pool and a test set); :class:`Loader` builds
it from a data config by name, from a sub-task of `task.subsets` (some classes, a disjoint part
of a data config's split: :func:`otdata.data.subsample.carve`) or from a setting of
`task.augmentations` (`task.augment_source` under image transforms: :mod:`otdata.data.transforms`),
and remembers a dataset whose files are missing so that its pairs are skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
from omegaconf import DictConfig, open_dict

from otdata.data import DataFileError
from otdata.data.subsample import carve, sample
from otdata.instantiate import safe_instantiate as instantiate
from otdata.tasks.common import source_config

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """One dataset of the experiment, in memory: a pool of training items and a test set."""

    name: str
    X: torch.Tensor           # training pool, flattened (n, d)
    y: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    image_size: int | None = None
    origin: str = ""          # what it was built from, for the record
    #: the whole training split (X, y), loaded on demand: what `task.n_pretrain=null` pre-trains on
    train_split: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class Loader:
    """Loads each dataset once per run (data configs by name, sub-tasks from `task.subsets`)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.loaded: dict[str, Dataset | DataFileError] = {}
        self._bases: dict[tuple[str, str], tuple] = {}

    def __call__(self, name: str) -> Dataset:
        if name not in self.loaded:
            try:
                self.loaded[name] = self._load(name)
            except DataFileError as error:
                log.warning("Skipping %s: %s", name, str(error).splitlines()[0])
                self.loaded[name] = error
        found = self.loaded[name]
        if isinstance(found, DataFileError):
            raise found
        return found

    def _datamodule(self, name: str, transform=None):
        cfg = source_config(self.cfg, name)
        if transform is not None:
            with open_dict(cfg):
                cfg.source.transform = transform
                cfg.source.transform_options = self.cfg.get("transform") or {}
        return instantiate(cfg.source)

    def _load(self, name: str) -> Dataset:
        task = self.cfg.task
        subsets = task.get("subsets") or {}
        if name in subsets:
            return self._subset(name, subsets[name])
        augmentations = task.get("augmentations") or {}
        if name in augmentations:
            return self._from_config(str(task.augment_source), augmentations[name], setting=name)
        return self._from_config(name)

    def _from_config(self, data: str, transform=None, setting: str | None = None) -> Dataset:
        """A data config's pool and test set, under `transform` (a setting of `task.augmentations`)."""
        task = self.cfg.task
        dm = self._datamodule(data, transform)
        X, y = dm.tensors("train", max_samples=task.n_pool, flatten=True)
        X_test, y_test = dm.tensors("test", max_samples=task.n_test, flatten=True)

        def train_split():  # read again when asked: the pool alone stays in memory
            return self._datamodule(data, transform).tensors("train", flatten=True)

        name, origin = dm.name, f"data={data}"
        if setting is not None:
            name = f"{dm.name}+{setting}"
            origin += f", transform={dm.settings()['transform']}"
        return Dataset(name, X, y, X_test, y_test, list(dm.class_names),
                       getattr(dm, "image_size", None), origin=origin, train_split=train_split)

    def _subset(self, name: str, spec: DictConfig) -> Dataset:
        base, split = str(spec.data), str(spec.get("split", "train"))
        if (base, split) not in self._bases:
            dm = self._datamodule(base)
            X, y = dm.tensors(split, flatten=True)
            self._bases[(base, split)] = (X, y, list(dm.class_names), getattr(dm, "image_size", None))
        X, y, names, image_size = self._bases[(base, split)]
        (X_tr, y_tr), (X_te, y_te), kept = carve(
            X, y, names, classes=spec.get("classes"), part=int(spec.get("part", 0)),
            parts=int(spec.get("parts", 1)), test_fraction=float(spec.get("test_fraction", 0.5)),
            seed=int(spec.get("seed", 0)))
        whole = (X_tr, y_tr)
        keep = sample(y_tr, self.cfg.task.n_pool, seed=0)
        X_tr, y_tr = X_tr[keep], y_tr[keep]
        keep = sample(y_te, self.cfg.task.n_test, seed=0)
        X_te, y_te = X_te[keep], y_te[keep]
        origin = (f"{base} {split} split, classes {kept}, part {spec.get('part', 0)} of "
                  f"{spec.get('parts', 1)}, {len(y_tr)} train / {len(y_te)} test")
        return Dataset(name, X_tr, y_tr, X_te, y_te, kept, image_size, origin=origin,
                       train_split=lambda: whole)
