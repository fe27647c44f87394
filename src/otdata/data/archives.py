"""CIFAR-10, CIFAR-100, SVHN and STL-10 in torchvision's on-disk formats, as LabeledDataModules.

The files are read as the official archives unpack (the layouts torchvision's own classes read),
under the data root:

* CIFAR-10: `<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`;
* CIFAR-100: `<data_dir>/cifar-100-python/{train, test, meta}` (the 100 fine labels);
* SVHN: `<data_dir>/SVHN/{train,test}_32x32.mat` (label 10 is the digit 0, as torchvision maps it);
* STL-10: `<data_dir>/stl10_binary/{train,test}_{X,y}.bin` and `class_names.txt` (labeled splits).

`X` is float32 `(n, 3, S, S)` in [0, 1] (`image_size` 32 by default, 96 for STL-10; None keeps the
stored size), `y` int64 `0..C-1`. The CIFAR batches are Python pickles: they are read with an
unpickler that only builds numpy arrays, lists, dicts and strings, so a tampered file cannot run
code. `download=true` fetches a missing dataset with torchvision (md5-checked).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets

from otdata.data.images import TorchvisionImageDataModule

#: the only globals a CIFAR batch may name: numpy's array reconstruction and the string codec
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(
                f"the file names {module}.{name}; a CIFAR batch holds only numpy arrays and lists")
        if name == "_reconstruct":
            from numpy._core import multiarray

            return multiarray._reconstruct
        return super().find_class(module, name)


def load_batch(path: Path) -> dict:
    """A CIFAR batch (a Python 2 pickle of a dict) with string keys, without running its code."""
    with path.open("rb") as handle:
        batch = _ArraysOnlyUnpickler(io.BytesIO(handle.read()), encoding="latin1").load()
    if not isinstance(batch, dict):
        raise ValueError(f"{path.name} holds a {type(batch).__name__}, not a CIFAR batch dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


class CIFAR10DataModule(TorchvisionImageDataModule):
    """CIFAR-10: 10 classes of 32×32 colour photos, 50,000 train / 10,000 test."""

    name = "CIFAR-10"
    dataset_cls = datasets.CIFAR10
    folder = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    meta, names_key, labels_key = "batches.meta", "label_names", "labels"
    CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    def __init__(self, *args, image_size: int | None = 32, mean: float = 0.5, std: float = 0.25,
                 **kwargs):
        super().__init__(*args, image_size=image_size, mean=mean, std=std, **kwargs)
        self._names: list[str] | None = None

    def _open(self, train: bool):
        return self.dataset_cls(root=str(self.data_dir), train=train, download=self.download)

    def expected_files(self, train: bool) -> list[Path]:
        names = self.train_files if train else self.test_files
        return [self.data_dir / self.folder / n for n in (*names, self.meta)]

    def _locate(self, path: Path) -> Path | None:
        return path if path.is_file() else None

    def _read(self, train: bool, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        batches = [load_batch(p) for p in paths[:-1]]
        images = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[self.labels_key], dtype=np.int64) for b in batches])
        return torch.from_numpy(images.reshape(-1, 3, 32, 32)), torch.from_numpy(labels)

    @property
    def class_names(self) -> list[str]:
        if self._names is None:
            meta = self.data_dir / self.folder / self.meta
            self._names = ([str(n) for n in load_batch(meta)[self.names_key]] if meta.is_file()
                           else list(self.CLASSES))
        return list(self._names)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: 100 classes (the fine labels) of 32×32 colour photos, 50,000 train / 10,000 test."""

    name = "CIFAR-100"
    dataset_cls = datasets.CIFAR100
    folder = "cifar-100-python"
    train_files, test_files = ("train",), ("test",)
    meta, names_key, labels_key = "meta", "fine_label_names", "fine_labels"
    CLASSES = tuple(str(i) for i in range(100))  # the names come from `meta`


class SVHNDataModule(TorchvisionImageDataModule):
    """SVHN (cropped digits): 10 classes, 73,257 train / 26,032 test, 32×32 colour."""

    name = "SVHN"
    dataset_cls = datasets.SVHN
    folder = "SVHN"

    def __init__(self, *args, image_size: int | None = 32, mean: float = 0.45, std: float = 0.2,
                 **kwargs):
        super().__init__(*args, image_size=image_size, mean=mean, std=std, **kwargs)

    def _open(self, train: bool):
        return datasets.SVHN(root=str(self.data_dir / self.folder), split="train" if train else "test",
                             download=self.download)

    def expected_files(self, train: bool) -> list[Path]:
        return [self.data_dir / self.folder / f"{'train' if train else 'test'}_32x32.mat"]

    def _locate(self, path: Path) -> Path | None:
        return path if path.is_file() else None

    def _read(self, train: bool, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        from scipy.io import loadmat

        stored = loadmat(str(paths[0]))
        images = np.transpose(np.asarray(stored["X"], dtype=np.uint8), (3, 2, 0, 1))
        labels = np.asarray(stored["y"], dtype=np.int64).reshape(-1)
        labels[labels == 10] = 0
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)

    @property
    def class_names(self) -> list[str]:
        return [str(d) for d in range(10)]


class STL10DataModule(TorchvisionImageDataModule):
    """STL-10 (labeled splits): 10 classes, 5,000 train / 8,000 test, 96×96 colour."""

    name = "STL-10"
    dataset_cls = datasets.STL10
    folder = "stl10_binary"
    CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")

    def __init__(self, *args, image_size: int | None = 96, mean: float = 0.45, std: float = 0.25,
                 **kwargs):
        super().__init__(*args, image_size=image_size, mean=mean, std=std, **kwargs)

    def _open(self, train: bool):
        return datasets.STL10(root=str(self.data_dir), split="train" if train else "test",
                              download=self.download)

    def expected_files(self, train: bool) -> list[Path]:
        prefix = "train" if train else "test"
        return [self.data_dir / self.folder / f"{prefix}_{part}.bin" for part in ("X", "y")]

    def _locate(self, path: Path) -> Path | None:
        return path if path.is_file() else None

    def _read(self, train: bool, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = np.fromfile(paths[0], dtype=np.uint8)
        if pixels.size % (3 * 96 * 96):
            raise ValueError(f"{paths[0].name} holds {pixels.size} bytes, not a whole number of "
                             "3×96×96 images (truncated?)")
        images = np.transpose(pixels.reshape(-1, 3, 96, 96), (0, 1, 3, 2))  # stored column-major
        labels = np.fromfile(paths[1], dtype=np.uint8).astype(np.int64) - 1
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)

    @property
    def class_names(self) -> list[str]:
        path = self.data_dir / self.folder / "class_names.txt"
        if path.is_file():
            return [n.strip() for n in path.read_text().splitlines() if n.strip()]
        return list(self.CLASSES)
