"""The shared part of the readers of a user's labeled texts (any CSV, a Hugging Face dataset's text
column): texts and labels per split, embedded like the built-in text datasets.

A reader implements `read_texts()`: raw texts and raw label values per split (`"train"`, `"test"`,
or `"all"` to be split with a seeded, stratified `test_fraction`). Labels become class indices with
`otdata.data.user.encode_labels`; embedding, its on-disk cache and the subsample drawn before
embedding are `TextCSVDataModule`'s (see `otdata.data.text`).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from pathlib import Path

import torch

from otdata.data.base import SPLITS
from otdata.data.errors import DataFormatError
from otdata.data.text import TextCSVDataModule
from otdata.data.user import encode_labels, split_off_test


class UserTextDataModule(TextCSVDataModule):
    """Labeled texts from a user's files, embedded with a sentence encoder.

    Args (beyond TextCSVDataModule's):
        name: the name shown in tables and in the embedding cache's file names.
        class_names: the classes in index order (labels that are names are looked up in it; an
            integer label is `value - label_base`); None takes the distinct labels found, sorted.
        label_base: the first class's number when integer labels index `class_names` (1 for 1..C).
        test_fraction: share held out for testing when the files hold one set.
    """

    def __init__(self, *args, name: str = "texts", class_names: list[str] | None = None,
                 label_base: int = 0, test_fraction: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction!r}.")
        self._name = str(name)
        self._given_names = None if class_names is None else [str(c) for c in class_names]
        self.label_base = int(label_base)
        self.test_fraction = float(test_fraction)
        self._all: dict[str, tuple[list[str], torch.Tensor]] | None = None

    @abstractmethod
    def read_texts(self) -> tuple[dict[str, tuple[list[str], list]], list[Path]]:
        """`({split: (texts, raw label values)}, files read)`."""

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._name

    @property
    def class_names(self) -> list[str]:
        self._splits()
        return list(self._class_names)

    def _splits(self) -> dict[str, tuple[list[str], torch.Tensor]]:
        if self._all is None:
            raw, files = self.read_texts()
            labels, self._class_names = encode_labels(
                self.name, {s: v for s, (_, v) in raw.items()}, self._given_names, self.label_base,
                files)
            if len(self._class_names) < 2:
                raise DataFormatError(self.name, f"only one class ({self._class_names}) was found.",
                                      "a labeled dataset distance needs at least two classes.", files)
            found = {s: (texts, labels[s]) for s, (texts, _) in raw.items()}
            if "all" in found:
                texts, y = found.pop("all")
                train, test = split_off_test(y, self.test_fraction, self.seed)
                found["train"] = ([texts[i] for i in train.tolist()], y[train])
                found["test"] = ([texts[i] for i in test.tolist()], y[test])
            self._all = found
        return self._all

    def _read(self, split: str) -> tuple[list[str], torch.Tensor]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        texts, y = self._splits().get(split, ([], torch.zeros(0, dtype=torch.int64)))
        if len(y) == 0:
            raise DataFormatError(self.name, f"there is no {split} split.",
                                  "give a test file, or set `test_fraction` to a share such as 0.2.")
        return texts, y

    def _cache_name(self, split: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.name}-{split}")
