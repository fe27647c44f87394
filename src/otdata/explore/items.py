"""The items a page choice stands for: one side's dataset, its transform, ``k`` samples per class
drawn with the page's seed. The end-to-end test builds the same items from the same functions
(`per_class_indices`, the transforms) to check the page's number against `DatasetDistance`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from otdata.data.subsample import per_class_indices
from otdata.data.transforms import transform_step

LABEL_DISTANCES = ("gaussian", "exact", "means", "sliced")


@dataclass(frozen=True)
class Side:
    """One side of the page: a picker key (or a path typed under the data root, which wins), and a
    transform of :mod:`otdata.data.transforms` (``none``; ``crop``: a ``crop`` × ``crop`` pixel square
    at a seeded random place of each image, resized back; ``rotate``: a turn by ``degrees``)."""

    dataset: str | None
    path: str = ""
    transform: str = "none"
    crop: int = 20
    degrees: float = 30.0

    @property
    def parameter(self) -> float | None:
        return {"crop": self.crop, "rotate": self.degrees}.get(self.transform)

    def spec(self, side: int = 28):
        """The transform as :func:`~otdata.data.transforms.transform_step` takes it, for images
        ``side`` pixels wide."""
        if self.transform == "crop":
            if self.crop < 2:
                raise ValueError(f"crop size must be a whole number of pixels >= 2, got {self.crop!r}")
            share = min(1.0, (self.crop / side) ** 2)
            return {"crop": {"scale": [share, share], "ratio": [1.0, 1.0]}}
        if self.transform == "rotate":
            return {"rotate": {"degrees": [self.degrees, self.degrees]}}
        return self.transform

    def step(self, side: int = 28):
        return transform_step(self.spec(side))

    def key(self) -> tuple:
        """What identifies the side's items (the parameter of an unused transform does not)."""
        return (self.dataset, self.path.strip(), self.transform, self.parameter)

    def transform_text(self) -> str:
        return {"crop": f"cropped to {self.crop} px squares", "rotate": f"rotated {self.degrees:g}°"
                }.get(self.transform, "")


@dataclass(frozen=True)
class Choice:
    """Everything the distance section depends on."""

    source: Side
    target: Side
    per_class: int
    label_distance: str
    seed: int

    def key(self, settings: tuple = ()) -> tuple:
        return (self.source.key(), self.target.key(), self.per_class, self.label_distance, self.seed,
                settings)


@dataclass
class Items:
    """A side's sampled items: ``X`` flattened ``(n, d)``, ``y`` in ``0..C-1``, the class names, the
    dataset's name and the shape of one item (``(C, H, W)`` for images)."""

    X: torch.Tensor
    y: torch.Tensor
    class_names: list[str]
    name: str
    item_shape: tuple[int, ...]

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """``(1, H, W)`` for gray images (what the image grids draw), else None."""
        shape = self.item_shape
        return shape if len(shape) == 3 and shape[0] == 1 else (
            (1, *shape) if len(shape) == 2 else None)


def check_choice(choice: Choice, max_per_class: int) -> None:
    """Refuse what no computation should start on: no dataset, a size out of range, an unknown label
    distance (the messages are shown on the page)."""
    for name, side in (("source", choice.source), ("target", choice.target)):
        if not side.dataset and not side.path.strip():
            raise ValueError(f"choose a {name} dataset (or type a folder under the data root)")
    k = choice.per_class
    if isinstance(k, bool) or k is None or int(k) != k:
        raise ValueError(f"samples per class must be a whole number, got {k!r}")
    if not 2 <= int(k) <= max_per_class:
        raise ValueError(f"samples per class must be between 2 (a class covariance needs two items) and "
                         f"{max_per_class} (task.max_per_class), got {k!r}")
    if choice.label_distance not in LABEL_DISTANCES:
        raise ValueError(f"label distance must be one of {LABEL_DISTANCES}, got {choice.label_distance!r}")


def sample_items(datamodule, side: Side, per_class: int, seed: int) -> Items:
    """``per_class`` items of every class of the datamodule's train split (seeded), transformed."""
    X, y = datamodule.tensors("train")
    names = list(datamodule.class_names)
    idx = per_class_indices(y, int(per_class), seed=int(seed), class_names=names)
    X, y = X[idx], y[idx]
    step = side.step(int(X.shape[-1]))
    if step is not None:  # each item's draw is keyed by its index in the split and the page's seed
        X = step(X, seed=int(seed), index=idx, name=f"{datamodule.name} ({side.transform})")
    return Items(X.reshape(len(X), -1).float(), y.long(), names, datamodule.name, tuple(X.shape[1:]))
