"""The shared part of the readers of a user's own data (image folders, arrays, Hugging Face
datasets, CIFAR-style archives): what a labeled dataset must satisfy, and how one set of items is
split into train and test.

A reader implements `read()`: the items of each split it found (a `Splits`). When only one set
is given (a folder without `train/` and `test/`, an array file without `X_test`), a seeded,
stratified share `test_fraction` of it becomes the test split (the same indices `max_samples` would
draw, see `otdata.data.subsample`). Every split is then checked (`check_labeled`) and uint8 pixels
become float images through `otdata.data.pixels`, exactly as in the built-in loaders. Subsampling
and the in-memory cache are `LabeledDataModule`'s.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from otdata.data.base import LabeledDataModule
from otdata.data.errors import DataFormatError
from otdata.data.pixels import to_float_images
from otdata.data.subsample import stratified_indices


@dataclass
class Splits:
    """What a reader found: `X` and `y` per split (`"train"`, `"test"`, or `"all"` to be split),
    the class names, and the files they came from (for error messages)."""

    data: dict[str, tuple[torch.Tensor, torch.Tensor]]
    class_names: list[str]
    files: list[Path] = field(default_factory=list)


def check_labels(name: str, y: torch.Tensor, num_classes: int | None, files=(),
                 what: str = "labels") -> torch.Tensor:
    """`y` as int64 in `0..num_classes-1` (`num_classes=None`: any non-negative integers).

    Refuses floats with a fractional part, NaN, negative or too large labels, naming the culprits.
    """
    y = torch.as_tensor(y)
    if y.ndim != 1:
        raise DataFormatError(name, f"{what} must be one integer per item, got shape {tuple(y.shape)}.",
                              "store the labels as a 1-d array of class indices.", files)
    if y.is_floating_point():
        bad = ~torch.isfinite(y) | (y != torch.round(y))
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            raise DataFormatError(
                name, f"{what} must be integers; item {i} has {y[i].item()!r} "
                f"({int(bad.sum())} non-integer label(s) in all).",
                "store class indices 0..C-1 (an integer array), with the names in `class_names`.", files)
    elif y.dtype == torch.bool or y.is_complex():
        raise DataFormatError(name, f"{what} have dtype {y.dtype}, not integers.",
                              "store class indices 0..C-1 as an integer array.", files)
    y = y.long()
    low, high = (int(y.min()), int(y.max())) if len(y) else (0, 0)
    limit = num_classes if num_classes is not None else high + 1
    if low < 0 or high >= limit:
        raise DataFormatError(
            name, f"{what} span {low}..{high}, but the {limit} classes are numbered 0..{limit - 1}.",
            "number the classes 0..C-1 (subtract the first label if they start at 1), and give "
            "one name per class in `class_names`.", files)
    return y


def check_features(name: str, X: torch.Tensor, n: int, files=()) -> torch.Tensor:
    """`X` with one row per label and only finite numbers (uint8 pixels pass as they are)."""
    if len(X) != n:
        raise DataFormatError(name, f"X holds {len(X)} items but y holds {n} labels.",
                              "give X and y the same first dimension (one label per item).", files)
    if X.is_floating_point():
        bad = ~torch.isfinite(X.flatten(1) if X.ndim > 1 else X[:, None]).all(dim=1)
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten()[:5].tolist()
            raise DataFormatError(
                name, f"{int(bad.sum())} item(s) hold NaN or infinite values (first: {rows}).",
                "drop or repair those items before loading (e.g. `X[np.isfinite(X).all(1)]`).", files)
    elif X.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        raise DataFormatError(name, f"X has dtype {X.dtype}, not numbers.",
                              "store X as a float or uint8 array.", files)
    return X


def split_off_test(y: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(train indices, test indices)`: a seeded, stratified share `test_fraction` for testing."""
    n_test = int(round(test_fraction * len(y)))
    if n_test == 0:
        return torch.arange(len(y)), torch.arange(0)
    test = stratified_indices(y, n_test, seed=seed)
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[test] = False
    return torch.nonzero(keep).flatten(), test


class UserDataModule(LabeledDataModule):
    """A dataset read from a user's files; subclasses implement `read()`.

    Args (beyond LabeledDataModule's):
        name: the name shown in tables and figures (default: the file or folder name).
        test_fraction: share of the items held out as the test split (seeded, stratified) when the
            files hold one set only; 0 puts every item in the train split.
        image_size: side of the square images after resizing (bilinear, antialiased); None keeps
            the stored size (then every image must have the same size). Ignored for feature vectors.
        normalize, mean, std: as in the built-in image datasets.
    """

    def __init__(self, *args, name: str | None = None, test_fraction: float = 0.2,
                 image_size: int | None = None, normalize: bool = False, mean: float = 0.1307,
                 std: float = 0.3081, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction!r}.")
        if name:
            self.name = str(name)
        self.test_fraction = float(test_fraction)
        self.image_size = image_size
        self.normalize, self.mean, self.std = normalize, mean, std
        self._splits: Splits | None = None

    @abstractmethod
    def read(self) -> Splits:
        """Every item of the files, as `Splits` (pixels as uint8 `(n, [C,] H, W)`, features float)."""

    def splits(self) -> Splits:
        """`read()` once, checked, with a single set split into train and test."""
        if self._splits is None:
            found = self.read()
            names = list(found.class_names)
            if "all" in found.data:
                X, y = found.data.pop("all")
                y = check_labels(self.name, y, len(names), found.files)
                X = check_features(self.name, torch.as_tensor(X), len(y), found.files)
                train, test = split_off_test(y, self.test_fraction, self.seed)
                found.data["train"], found.data["test"] = (X[train], y[train]), (X[test], y[test])
            for split, (X, y) in found.data.items():
                y = check_labels(self.name, y, len(names), found.files, what=f"{split} labels")
                found.data[split] = (check_features(self.name, torch.as_tensor(X), len(y), found.files), y)
            self.check_classes(found)
            self._splits = found
        return self._splits

    def check_classes(self, found: Splits) -> None:
        """At least two classes: with one, every label distance and correspondence is trivial."""
        names = found.class_names
        if len(names) < 2:
            raise DataFormatError(
                self.name, f"only one class ({names[0] if names else 'none'}) was found; a labeled "
                "dataset distance needs at least two.",
                "add a second class (one sub-folder, or one label value, per class).", found.files)

    @property
    def class_names(self) -> list[str]:
        return list(self.splits().class_names)

    def load_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        X, y = self.splits().data.get(split, (None, None))
        if y is None or len(y) == 0:
            raise DataFormatError(
                self.name, f"there is no {split} split (the files hold one set and "
                f"test_fraction={self.test_fraction}).",
                "give a test set (a `test/` folder, `X_test`/`y_test`, a test file), or set "
                "`test_fraction` to a share such as 0.2.", self.splits().files)
        if X.dtype == torch.uint8 and X.ndim in (3, 4):
            return to_float_images(X, self.image_size, self.normalize, self.mean, self.std), y
        X = X.float()
        return ((X - self.mean) / self.std if self.normalize else X), y

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, max_samples={self.max_samples})"


def encode_labels(name: str, columns: dict[str, list], class_names: list[str] | None = None,
                  label_base: int = 0, files=()) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Raw label values per split (integers, integer strings or class names) → class indices.

    With `class_names`, an integer label is `value - label_base` (checked against the names) and a
    name is its position in them. Without, the classes are the distinct values of every split
    together, sorted (numerically for integers), named as written. Returns `(labels per split,
    class names)`.
    """
    values = [v for column in columns.values() for v in column]
    as_int = _as_integers(values)
    if as_int is not None and class_names:
        shifted = {s: torch.tensor(_as_integers(c) or [], dtype=torch.int64) - label_base
                   for s, c in columns.items()}
        return {s: check_labels(name, t, len(class_names), files, f"{s} labels (minus label_base="
                                f"{label_base})") for s, t in shifted.items()}, list(class_names)
    if as_int is not None:
        found = sorted(set(as_int))
        index = {v: i for i, v in enumerate(found)}
        return {s: torch.tensor([index[v] for v in _as_integers(c) or []], dtype=torch.int64)
                for s, c in columns.items()}, [str(v) for v in found]
    names = list(class_names) if class_names else sorted({str(v) for v in values})
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(v) for v in values} - set(index))
    if unknown:
        raise DataFormatError(
            name, f"labels {unknown[:5]} are not among the class names {names[:10]}.",
            "list every class in `class_names`, or leave it out to take the names found.", files)
    return {s: torch.tensor([index[str(v)] for v in c], dtype=torch.int64)
            for s, c in columns.items()}, names


def _as_integers(values: list) -> list[int] | None:
    """The values as ints when every one is an integer (or an integer string), else None."""
    out = []
    for v in values:
        if isinstance(v, bool):
            return None
        if isinstance(v, (int, np.integer)):
            out.append(int(v))
        elif isinstance(v, str) and v.strip().lstrip("+-").isdigit():
            out.append(int(v))
        else:
            return None
    return out
