"""Transfer learning pieces for `experiment=transferability`: pre-train, carry weights over, fine-tune.

* `MLP` — a small classifier network for feature vectors (text embeddings), usable as the `net` of
  `otdata.models.Classifier` and rebuilt from its checkpoint like the image networks.
* `TensorDataModule` — a `LabeledDataModule` over tensors already in memory (e.g. a sub-task carved
  out of a dataset), so everything downstream treats it like any other dataset.
* `carve` — a sub-task of a labeled split: some of its classes, one of `parts` disjoint parts of its
  rows, split into train/test.
* `transfer_weights` — a fresh classifier for the target that starts from the pre-trained weights;
  the classification head is replaced when the class counts differ (or always, on request).
* `fit` / `accuracy` — a fixed-budget fit (no validation) on a small sample, and test accuracy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from otdata.data.base import LabeledDataModule
from otdata.data.subsample import stratified_indices
from otdata.models.classifier import Classifier
from otdata.models.training import build_classifier, config_dict

log = logging.getLogger(__name__)

#: Parameter names of the classification head in every otdata network (`net.classifier`).
HEAD_PREFIX = "net.classifier."
HEAD_MODES = ("auto", "reset", "keep")


class MLP(nn.Module):
    """Feature vectors `(B, in_features)` → logits: `[Linear-ReLU-Dropout] × len(hidden)` then a
    linear head (`classifier`). `hidden=[]` is a linear classifier.

    Records its constructor arguments in `init_args`, so a `Classifier` checkpoint rebuilds it.
    """

    def __init__(self, in_features: int = 384, num_classes: int = 2,
                 hidden: Sequence[int] = (256,), dropout: float = 0.1):
        super().__init__()
        hidden = [int(h) for h in hidden]
        self.init_args = {"in_features": int(in_features), "num_classes": int(num_classes),
                          "hidden": hidden, "dropout": float(dropout)}
        self.in_features, self.num_classes = int(in_features), int(num_classes)
        layers: list[nn.Module] = []
        width = self.in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, self.num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(len(x), -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


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


def disjoint_parts(y: torch.Tensor, parts: int, seed: int = 0) -> torch.Tensor:
    """Part index `0..parts-1` of every row: rows are shuffled (seeded) within their class and dealt
    out in turn, so every part has about the same class proportions and no two parts share a row."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}.")
    generator = torch.Generator().manual_seed(seed)
    part = torch.empty(len(y), dtype=torch.long)
    for c in torch.unique(y):
        members = torch.nonzero(y == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        part[members] = torch.arange(len(members)) % parts
    return part


def carve(X: torch.Tensor, y: torch.Tensor, class_names: Sequence[str], *,
          classes: Sequence[int] | None = None, part: int = 0, parts: int = 1,
          test_fraction: float = 0.5, seed: int = 0):
    """A sub-task of one labeled split: part `part` of `parts` disjoint parts of its rows (see
    `disjoint_parts`), only the rows of `classes` (relabelled `0..k-1` in the given order; None =
    all), then per class the first `test_fraction` of a seeded shuffle as test, the rest as train.

    Sub-tasks with the same `parts` and `seed` never share a row when they use different parts or
    disjoint classes. Returns `((X_train, y_train), (X_test, y_test), names)`.
    """
    if not 0 <= part < parts:
        raise ValueError(f"part must be in 0..{parts - 1}, got {part}.")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    classes = list(range(len(class_names))) if classes is None else [int(c) for c in classes]
    unknown = [c for c in classes if not 0 <= c < len(class_names)]
    if unknown or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct indices of {list(class_names)}, got {classes}.")
    mine = disjoint_parts(y, parts, seed) == part
    generator = torch.Generator().manual_seed(seed + 1)
    train, test = [], []
    for new, old in enumerate(classes):
        rows = torch.nonzero(mine & (y == old)).flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        n_test = int(round(test_fraction * len(rows)))
        test.append((rows[:n_test], new))
        train.append((rows[n_test:], new))

    def gather(chunks):
        index = torch.cat([rows for rows, _ in chunks])
        labels = torch.cat([torch.full((len(rows),), new, dtype=torch.long) for rows, new in chunks])
        order = torch.argsort(index)
        return X[index[order]], labels[order]

    return gather(train), gather(test), [str(class_names[c]) for c in classes]


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


def sample(y: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """A stratified, seeded subsample of `n` indices of `y` (all of them when `n` is None)."""
    return torch.arange(len(y)) if n is None else stratified_indices(y, int(n), seed=seed)
