"""A Hugging Face `datasets` dataset from local disk, as a LabeledDataModule (never a hub download).

`path` is one of:

* a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (read with
  `datasets.load_from_disk`); a `DatasetDict`'s `train_split` and `test_split` are the two splits;
* a `.parquet` or `.arrow` file, or a folder of them (e.g. a dataset repository's `data/` folder):
  files whose names contain `train` / `test` are those splits when both are present.

A single set is split with a seeded, stratified `test_fraction`. The label column may be a
`ClassLabel` (its names become the class names), integers or strings. `HFImageDataModule` reads an
image column (`Image` feature or uint8 arrays) into float pixels as the built-in loaders do;
`HFTextDataModule` embeds a text column like the built-in text datasets. Images of one dataset must
share one size (resize them with a features step otherwise).

Example:
    >>> dm = HFImageDataModule(path="my_dataset", image_column="img", label_column="label")
    >>> X, y = dm.tensors("train", flatten=True)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from otdata.data.errors import DataFormatError
from otdata.data.hf_columns import hf_arrays
from otdata.data.user import Splits, UserDataModule, encode_labels
from otdata.data.user_text import UserTextDataModule

FILE_FORMATS = (".parquet", ".arrow")


def _import_datasets():
    try:
        import datasets
    except ImportError as error:  # an optional dependency
        raise ImportError("data=hf needs the `datasets` package: pip install 'otdata[hf]'") from error
    return datasets


def _read_files(files: list[Path]):
    datasets = _import_datasets()
    parts = []
    for f in files:
        if f.suffix == ".arrow":
            parts.append(datasets.Dataset.from_file(str(f)))
        else:
            import pyarrow.parquet as pq

            parts.append(datasets.Dataset(pq.read_table(f)))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def load_local(name: str, path: Path, train_split: str = "train", test_split: str = "test") -> dict:
    """`{split: datasets.Dataset}` (`"all"` for a single set) from a local path (module docstring)."""
    if not path.exists():
        raise DataFormatError(name, "the dataset path does not exist.", "check the path: a relative path is looked up in the working directory, then under `paths.data_dir`.", [path])
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        loaded = _import_datasets().load_from_disk(str(path))
        if not hasattr(loaded, "keys"):
            return {"all": loaded}
        if train_split in loaded and test_split in loaded:
            return {"train": loaded[train_split], "test": loaded[test_split]}
        if len(loaded) == 1 or train_split in loaded:
            return {"all": loaded[train_split if train_split in loaded else next(iter(loaded))]}
        raise DataFormatError(name, f"the saved DatasetDict has splits {list(loaded)}, not "
                              f"{train_split!r}.", "name the splits with `train_split=` / "
                              "`test_split=`.", [path])
    if path.is_file() and path.suffix not in FILE_FORMATS:
        raise DataFormatError(
            name, f"{path.name} is in an unknown format ({path.suffix or 'no suffix'}).",
            "give a folder written by save_to_disk, or .parquet / .arrow files.", [path])
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.suffix in FILE_FORMATS and not f.name.startswith("cache-"))
    if not files:
        raise DataFormatError(name, f"{path} holds neither a saved dataset (dataset_dict.json or "
                              "state.json) nor .parquet / .arrow files.",
                              "point `path` at a save_to_disk folder or at parquet/arrow files.", [path])
    by_split = {s: [f for f in files if s in f.name.lower()] for s in ("train", "test")}
    if all(by_split.values()) and len(by_split["train"]) + len(by_split["test"]) == len(files):
        return {s: _read_files(fs) for s, fs in by_split.items()}
    return {"all": _read_files(files)}


def _check_columns(name: str, dataset, columns: list[str], path: Path) -> None:
    """`columns[0]` is the label column, the others the image or text columns."""
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        what = "label column" if columns[0] in missing else "column"
        raise DataFormatError(
            name, f"the dataset has no {what} {' or '.join(map(repr, missing))} (its columns: "
            f"{dataset.column_names}).",
            "name its columns with `label_column=` and `image_column=` / `text_column=`; a "
            "dataset without labels cannot be compared as a labeled dataset.", [path])


class HFImageDataModule(UserDataModule):
    """Images and labels from a local Hugging Face dataset (see the module docstring).

    Args (beyond UserDataModule's and LabeledDataModule's):
        path: the save_to_disk folder, or parquet/arrow file(s) (absolute, or relative to the
            working directory or else to `data_dir`).
        image_column, label_column: the columns to read.
        class_names: overrides the ClassLabel's names (default: those, else the labels found).
        train_split, test_split: the splits of a saved DatasetDict.
    """

    def __init__(self, path: str | Path, *args, image_column: str = "image",
                 label_column: str = "label", class_names: list[str] | None = None,
                 train_split: str = "train", test_split: str = "test", **kwargs):
        super().__init__(*args, **kwargs)
        path = Path(path).expanduser()
        self.path = path if path.exists() or path.is_absolute() else self.data_dir / path
        if "name" not in kwargs or not kwargs["name"]:
            self.name = self.path.stem
        self.image_column, self.label_column = image_column, label_column
        self._given_names = class_names
        self.train_split, self.test_split = train_split, test_split

    def read(self) -> Splits:
        parts = load_local(self.name, self.path, self.train_split, self.test_split)
        arrays, names = {}, self._given_names
        for split, dataset in parts.items():
            try:  # the columns as arrays, as `as_labeled` reads a datasets.Dataset
                X, y, found = hf_arrays(dataset, self.image_column, self.label_column, self.name)
            except (TypeError, ValueError) as error:
                raise DataFormatError(
                    self.name, str(error), "name the columns with `image_column=` and "
                    "`label_column=`; a dataset without labels cannot be compared as a labeled "
                    "dataset.", [self.path]) from error
            arrays[split] = (torch.from_numpy(np.ascontiguousarray(X)), list(y))
            names = names or found
        labels, names = encode_labels(self.name, {s: y for s, (_, y) in arrays.items()}, names, 0,
                                      [self.path])
        return Splits({s: (X, labels[s]) for s, (X, _) in arrays.items()}, names, [self.path])


class HFTextDataModule(UserTextDataModule):
    """Texts and labels from a local Hugging Face dataset, embedded (see the module docstring).

    Args (beyond UserTextDataModule's and TextCSVDataModule's): `path`, `label_column`,
    `train_split`, `test_split` as for `HFImageDataModule`; `text_column`: one column name or a
    list of them (joined with a space).
    """

    def __init__(self, path: str | Path, *args, text_column: str | list[str] = "text",
                 label_column: str = "label", train_split: str = "train", test_split: str = "test",
                 **kwargs):
        path = Path(path).expanduser()
        if not kwargs.get("name"):
            kwargs["name"] = path.stem
        super().__init__(*args, **kwargs)
        self.path = path if path.exists() or path.is_absolute() else self.data_dir / path
        self.text_columns = [text_column] if isinstance(text_column, str) else list(text_column)
        self.label_column, self.train_split, self.test_split = label_column, train_split, test_split

    def read_texts(self):
        parts = load_local(self.name, self.path, self.train_split, self.test_split)
        for dataset in parts.values():
            _check_columns(self.name, dataset, [self.label_column, *self.text_columns], self.path)
        feature = next(iter(parts.values())).features[self.label_column]
        if self._given_names is None and getattr(feature, "names", None):
            self._given_names = list(feature.names)
        texts = {s: [" ".join(str(t).strip() for t in row if t is not None)
                     for row in zip(*(d[c] for c in self.text_columns))] for s, d in parts.items()}
        return {s: (texts[s], list(d[self.label_column])) for s, d in parts.items()}, [self.path]
