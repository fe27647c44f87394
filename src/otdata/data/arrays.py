"""A labeled dataset stored as arrays in one file (`.npz`, `.pt`, `.safetensors`), as a
LabeledDataModule.

The file holds `X` (images `(n, H, W)` / `(n, C, H, W)`, or feature vectors `(n, d)`), `y` (class
indices `0..C-1`, one per item) and optionally `class_names`, `X_test` and `y_test`. Key names can
be changed (`x_key`, `y_key`). uint8 images become float pixels in [0, 1] as in the built-in loaders
(`otdata.data.pixels`); float arrays are taken as they are (features, or images already scaled).
Without a test set, a seeded, stratified `test_fraction` of the items is held out.

Formats, read without running any code from the file:

* `.npz`: `numpy.load(allow_pickle=False)`; `class_names` as an array of strings.
* `.pt` / `.pth`: `torch.load(weights_only=True)` of a dict of tensors, arrays or lists;
  `class_names` as a list of strings.
* `.safetensors`: tensors by name; `class_names` as a JSON list in the file's metadata
  (`save_file(tensors, path, metadata={"class_names": json.dumps(names)})`).

Example:
    >>> np.savez("feats.npz", X=features, y=labels, class_names=np.array(["cat", "dog"]))
    >>> X, y = ArraysDataModule(path="feats.npz").tensors("train")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from otdata.data.errors import DataFormatError
from otdata.data.user import Splits, UserDataModule

FORMATS = (".npz", ".pt", ".pth", ".safetensors")


def _tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    if array.dtype.kind in "USO":
        raise TypeError(f"an array of {array.dtype} where numbers were expected")
    return torch.from_numpy(np.array(array))


def _names(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in np.asarray(value).reshape(-1).tolist()]


def read_array_file(path: Path) -> tuple[dict, list[str] | None]:
    """`(arrays by key, class names or None)` from a supported file (see the module docstring)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
        return arrays, _names(arrays.pop("class_names", None))
    if suffix in (".pt", ".pth"):
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(stored, dict):
            raise TypeError(f"the file holds a {type(stored).__name__}, not a dict of arrays")
        arrays = dict(stored)
        return arrays, _names(arrays.pop("class_names", None))
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as stored:
            arrays = {k: stored.get_tensor(k) for k in stored.keys()}
            metadata = stored.metadata() or {}
        return arrays, _names(metadata.get("class_names"))
    raise ValueError(f"unknown format {suffix!r}")


class ArraysDataModule(UserDataModule):
    """Labeled arrays from one file (see the module docstring).

    Args (beyond UserDataModule's and LabeledDataModule's):
        path: the file (absolute, or relative to the working directory or else to `data_dir`).
        x_key, y_key: the names of the items and labels (the test set: `<x_key>_test`,
            `<y_key>_test`).
        class_names: names of the classes, overriding the file's (default: the file's, else
            "0", "1", ...).
    """

    def __init__(self, path: str | Path, *args, x_key: str = "X", y_key: str = "y",
                 class_names: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        path = Path(path).expanduser()
        self.path = path if path.is_file() or path.is_absolute() else self.data_dir / path
        if "name" not in kwargs or not kwargs["name"]:
            self.name = self.path.stem
        self.x_key, self.y_key = x_key, y_key
        self._given_names = None if class_names is None else [str(c) for c in class_names]

    def _load(self) -> tuple[dict, list[str] | None]:
        if self.path.suffix.lower() not in FORMATS:
            raise DataFormatError(
                self.name, f"{self.path.name} is in an unknown format ({self.path.suffix or 'no suffix'}).",
                f"save the arrays as one of {', '.join(FORMATS)} (see `otdata.data.arrays`).",
                [self.path])
        if not self.path.is_file():
            raise DataFormatError(self.name, "the array file does not exist.", "check the path: a relative path is looked up in the working directory, then under `paths.data_dir`.", [self.path])
        try:
            return read_array_file(self.path)
        except Exception as error:  # corrupt file, pickled objects, wrong container
            raise DataFormatError(
                self.name, f"could not read {self.path.name} ({type(error).__name__}: {error}).",
                "write it again with numpy.savez, torch.save of a dict of tensors, or "
                "safetensors' save_file; pickled Python objects are not loaded.", [self.path]) from error

    def read(self) -> Splits:
        arrays, names = self._load()
        missing = [k for k in (self.x_key, self.y_key) if k not in arrays]
        if missing:
            raise DataFormatError(
                self.name, f"{self.path.name} has no {' or '.join(map(repr, missing))} "
                f"(it holds {sorted(arrays)}).",
                f"store the items as {self.x_key!r} and the labels as {self.y_key!r}, or name "
                "yours with `x_key=` / `y_key=`.", [self.path])
        try:
            pairs = {"all": (self.x_key, self.y_key)}
            if f"{self.x_key}_test" in arrays and f"{self.y_key}_test" in arrays:
                pairs = {"train": (self.x_key, self.y_key),
                         "test": (f"{self.x_key}_test", f"{self.y_key}_test")}
            data = {split: (_tensor(arrays[x]), _tensor(arrays[y])) for split, (x, y) in pairs.items()}
        except TypeError as error:
            raise DataFormatError(self.name, f"{self.path.name}: {error}.",
                                  "store X as numbers and y as integer class indices.",
                                  [self.path]) from error
        names = self._given_names or names
        if names is None:  # "0", "1", ... up to the largest label (odd labels are refused later)
            highest = max((float(y.max()) for _, y in data.values() if len(y)), default=0.0)
            names = [str(i) for i in range(int(highest) + 1)] if 0 <= highest < 1e6 else []
        return Splits(data, names, [self.path])
