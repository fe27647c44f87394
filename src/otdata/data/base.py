"""The base of every otdata dataset: a LightningDataModule that can also hand itself over as
tensors `(X, y)`, which is what the optimal-transport code consumes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from numbers import Integral
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from otdata.data.features import feature_step
from otdata.data.subsample import stratified_indices
from otdata.data.transforms import transform_step

SPLITS = ("train", "test")


def check_sample_size(value) -> None:
    """Refuse a sample size that is not a positive integer (0 or -5 would silently mean "nothing"
    or "all but five")."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise ValueError(
            f"a sample size of {value!r} was asked for; sample sizes must be positive integers, or "
            "null for the whole split. Check the task's sizes (`task.n_source`, `task.n_target`, "
            "`task.n_flow`, `task.n_test`) and `data.max_samples` / `data.max_test_samples`.")


class LabeledDataModule(L.LightningDataModule, ABC):
    """A labeled classification dataset.

    Subclasses implement `load_split` (the whole split as tensors) and `class_names`. This class adds
    stratified, seeded subsampling (`max_samples`), an in-memory cache, a train/val split for
    Lightning, and `tensors()` for OT code.

    Args:
        data_dir: root folder that holds the dataset files (see each subclass for the layout).
        max_samples: keep at most this many training items (stratified by class, seeded). None = all.
        max_test_samples: the same for the test split.
        seed: seed of the subsampling and of the train/val split.
        batch_size, num_workers: DataLoader settings.
        val_fraction: share of the (subsampled) training split held out for validation.
        download: fetch missing files from the internet (off by default: data roots are offline).
        features: a feature step applied to every split handed out, after subsampling
            (:mod:`otdata.data.features`: a step, its config, or a name in ``conf/features/``; None:
            the items as read).
        transform: image transforms applied to every split handed out, after subsampling and
            before ``features`` (:mod:`otdata.data.transforms`: a name, a list of names, a mapping
            of name → parameters; None: none), each item with its own draw from ``seed``.
        transform_options: parameters per transform name (the command line's ``transform`` node).
    """

    name: str = "dataset"

    def __init__(
        self,
        data_dir: str | Path = "data",
        max_samples: int | None = None,
        max_test_samples: int | None = None,
        seed: int = 0,
        batch_size: int = 128,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        download: bool = False,
        features=None,
        transform=None,
        transform_options=None,
    ):
        super().__init__()
        for size in (max_samples, max_test_samples):
            if size is not None:
                check_sample_size(size)
        self.data_dir = Path(data_dir)
        self.max_samples = max_samples
        self.max_test_samples = max_test_samples
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.download = download
        self.features = feature_step(features)
        self.transform = transform_step(transform, transform_options)
        self._cache: dict = {}
        self.train_set = self.val_set = self.test_set = None

    # -- what a subclass provides -------------------------------------------------------------
    @abstractmethod
    def load_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as `(X float32, y int64 in 0..C-1)`; raise DataFileError if unreadable."""

    @property
    @abstractmethod
    def class_names(self) -> list[str]:
        """Human-readable name of each class index."""

    # -- what every dataset gets ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def tensors(
        self, split: str = "train", max_samples: int | None = None, flatten: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (subsampled) split as tensors `(X, y)`.

        `max_samples` overrides the datamodule's setting for this call; `flatten=True` returns
        `X` as `(n, d)`, the shape OT code expects. The datamodule's `transform` and `features`
        steps, if any, are applied after subsampling (once per split and size).
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        if split not in self._cache:
            self._cache[split] = self.load_split(split)
        X, y = self._cache[split]
        limit = max_samples if max_samples is not None else (
            self.max_samples if split == "train" else self.max_test_samples
        )
        index = None
        if limit is not None:
            check_sample_size(limit)
            index = stratified_indices(y, int(limit), seed=self.seed)
            X, y = X[index], y[index]
        if self.transform is not None or self.features is not None:
            key = ("items", split, limit)
            if key not in self._cache:
                self._cache[key] = self._prepared(X, split, index)
            X = self._cache[key]
        if flatten:
            X = X.reshape(len(X), -1)
        return X, y

    def _prepared(self, X: torch.Tensor, split: str, index) -> torch.Tensor:
        """The subsampled items after the transform (in pixel space: a normalised dataset is
        un-normalised around it) and the feature step."""
        name = f"{self.name}-{split}-{len(X)}"
        if self.transform is not None:
            normalized = getattr(self, "normalize", False)
            if normalized:
                X = X * self.std + self.mean
            X = self.transform(X, seed=self.seed, index=index, split=split, name=name)
            if normalized:
                X = (X - self.mean) / self.std
        return self.features(X, name=name) if self.features is not None else X

    def settings(self) -> dict:
        """What the items a task sees depend on beyond the files: name, transform, feature step."""
        return {"dataset": self.name,
                "transform": self.transform.describe() if self.transform is not None else None,
                "features": self.features.describe() if self.features is not None else None}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            X, y = self.tensors("train")
            n_val = int(round(self.val_fraction * len(y)))
            perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.seed))
            self.val_set = TensorDataset(X[perm[:n_val]], y[perm[:n_val]])
            self.train_set = TensorDataset(X[perm[n_val:]], y[perm[n_val:]])
        if self.test_set is None and stage in (None, "test", "predict"):
            self.test_set = TensorDataset(*self.tensors("test"))

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            self.setup("test")
        return self._loader(self.test_set, shuffle=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data_dir={str(self.data_dir)!r}, max_samples={self.max_samples})"


class TensorDataModule(LabeledDataModule):
    """A labeled dataset held in memory: `{"train": (X, y), "test": (X, y)}` plus class names."""

    def __init__(self, name: str, splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                 class_names: Sequence[str], image_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.name = name
        self._splits = dict(splits)
        self._names = [str(c) for c in class_names]
        self.image_size = image_size

    def load_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._splits[split]

    @property
    def class_names(self) -> list[str]:
        return list(self._names)
