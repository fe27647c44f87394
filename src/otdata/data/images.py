"""The *NIST image datasets (MNIST, KMNIST, FashionMNIST, EMNIST, USPS) as LabeledDataModules.

The *NIST family's IDX files are read by `otdata.data.idx` (plain or gzipped, md5-checked against
the official releases); USPS by torchvision's reader; torchvision downloads missing files when
asked. This module turns a split into tensors once: `X` float32 `(n, 1, S, S)` in [0, 1] (optionally normalized), `y` int64
`0..C-1`. Every dataset is resized to a common side (`image_size`, 28 by default) so that MNIST,
USPS (16×16 on disk) and the rest live in one feature space.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from torchvision import datasets

from otdata.data import idx
from otdata.data.base import LabeledDataModule
from otdata.data.errors import DataFileError
from otdata.data.pixels import to_float_images


class TorchvisionImageDataModule(LabeledDataModule):
    """Shared loading logic; subclasses name the torchvision class, the files and the classes.

    Args (beyond LabeledDataModule's):
        image_size: side of the square images after resizing (bilinear, antialiased); None keeps
            the on-disk size.
        normalize: subtract `mean` and divide by `std` after scaling pixels to [0, 1].
    """

    dataset_cls: type = datasets.MNIST
    folder: str = "MNIST"

    def __init__(
        self,
        *args,
        image_size: int | None = 28,
        normalize: bool = False,
        mean: float = 0.1307,
        std: float = 0.3081,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.image_size = image_size
        self.normalize = normalize
        self.mean = mean
        self.std = std

    # -- hooks -----------------------------------------------------------------------------------
    def _open(self, train: bool):
        """The torchvision dataset (used to download missing files)."""
        return self.dataset_cls(root=str(self.data_dir), train=train, download=self.download)

    def expected_files(self, train: bool) -> list[Path]:
        """The raw files a split needs, where torchvision looks for them (each may also be gzipped)."""
        prefix = "train" if train else "t10k"
        raw = self.data_dir / self.folder / "raw"
        return [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]

    def _locate(self, path: Path) -> Path | None:
        """Where an expected file is on disk: itself or its `.gz` (see `otdata.data.idx.locate`)."""
        return idx.locate(path)

    def _read(self, train: bool, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        """`(images uint8 (n, S, S), labels int64)` from the located files (md5-checked IDX)."""
        images, labels = (idx.read_idx(p, self.folder) for p in paths)
        return images, labels.long()

    def missing_files(self, split: str = "train") -> list[Path]:
        """The files of ``split`` that are not on disk (empty: the split can be read)."""
        files = self.expected_files(split == "train")
        return [f for f in files if self._locate(f) is None]

    # -- loading ---------------------------------------------------------------------------------
    def load_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        train = split == "train"
        files = self.expected_files(train)
        found = [self._locate(f) for f in files]
        if None in found and self.download:
            try:
                self._open(train)
            except Exception as error:  # offline, HTTP error, bad archive
                raise DataFileError(
                    self.name, self.data_dir, files,
                    f"the {split} split is missing and downloading it failed ({error}).",
                ) from error
            found = [self._locate(f) for f in files]
        if None in found:
            missing = [f for f, g in zip(files, found) if g is None]
            raise DataFileError(self.name, self.data_dir, missing, f"the {split} split is missing.")
        try:
            images, labels = self._read(train, found)
        except Exception as error:  # malformed, truncated, not the official content
            raise DataFileError(
                self.name, self.data_dir, found, f"could not read the {split} split ({error})."
            ) from error
        if len(images) != len(labels) or len(labels) == 0:
            raise DataFileError(
                self.name, self.data_dir, found,
                f"the {split} split is corrupt: {len(images)} images but {len(labels)} labels.",
            )
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataFileError(
                self.name, self.data_dir, found,
                f"the {split} split is corrupt: labels span {int(labels.min())}..{int(labels.max())},"
                f" expected 0..{self.num_classes - 1}.",
            )
        return self._to_float(images), labels

    def _to_float(self, images: torch.Tensor) -> torch.Tensor:
        return to_float_images(images, self.image_size, self.normalize, self.mean, self.std)


class MNISTDataModule(TorchvisionImageDataModule):
    """MNIST handwritten digits: 60,000 train / 10,000 test, 28×28. Files: `<data_dir>/MNIST/raw/`."""

    name = "MNIST"

    @property
    def class_names(self) -> list[str]:
        return list(string.digits)


class KMNISTDataModule(TorchvisionImageDataModule):
    """Kuzushiji-MNIST: 10 cursive Japanese characters, 28×28. Files: `<data_dir>/KMNIST/raw/`."""

    name = "KMNIST"
    dataset_cls = datasets.KMNIST
    folder = "KMNIST"

    @property
    def class_names(self) -> list[str]:
        return list(datasets.KMNIST.classes)


class FashionMNISTDataModule(TorchvisionImageDataModule):
    """Fashion-MNIST: 10 clothing classes, 28×28. Files: `<data_dir>/FashionMNIST/raw/`."""

    name = "FashionMNIST"
    dataset_cls = datasets.FashionMNIST
    folder = "FashionMNIST"

    @property
    def class_names(self) -> list[str]:
        return list(datasets.FashionMNIST.classes)


class EMNISTDataModule(TorchvisionImageDataModule):
    """EMNIST, one of its splits (`letters` by default: 26 classes a..z).

    Files: `<data_dir>/EMNIST/raw/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte`, or
    the same names gzipped as distributed (`.gz`, also under `raw/gzip/` as unpacked from the zip).
    The raw images are stored transposed; they are turned upright here. The `letters` split labels
    letters 1..26 on disk (0 is an unused "N/A"): they are exposed as 0..25.
    """

    name = "EMNIST"
    dataset_cls = datasets.EMNIST
    folder = "EMNIST"

    def __init__(self, *args, split: str = "letters", **kwargs):
        if split not in datasets.EMNIST.splits:
            raise ValueError(f"EMNIST split must be one of {datasets.EMNIST.splits}, got {split!r}.")
        self.split = split
        super().__init__(*args, **kwargs)

    def _open(self, train: bool):
        return datasets.EMNIST(
            root=str(self.data_dir), split=self.split, train=train, download=self.download
        )

    def expected_files(self, train: bool) -> list[Path]:
        prefix = f"emnist-{self.split}-{'train' if train else 'test'}"
        raw = self.data_dir / self.folder / "raw"
        return [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]

    def _read(self, train: bool, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = super()._read(train, paths)
        if self.split == "letters":
            labels = labels - 1
        return images.transpose(-1, -2).contiguous(), labels

    @property
    def class_names(self) -> list[str]:
        names = datasets.EMNIST.classes_split_dict[self.split]
        return names[1:] if self.split == "letters" else list(names)


class USPSDataModule(TorchvisionImageDataModule):
    """USPS handwritten digits: 7,291 train / 2,007 test, 16×16 on disk (resized to 28×28).

    Files (libsvm format, bzip2): `<data_dir>/USPS/usps.bz2` and `<data_dir>/USPS/usps.t.bz2`.
    """

    name = "USPS"
    dataset_cls = datasets.USPS
    folder = "USPS"

    def _open(self, train: bool):
        return datasets.USPS(root=str(self.data_dir / self.folder), train=train, download=self.download)

    def expected_files(self, train: bool) -> list[Path]:
        return [self.data_dir / self.folder / ("usps.bz2" if train else "usps.t.bz2")]

    def _locate(self, path: Path) -> Path | None:
        return path if path.is_file() else None

    def _read(self, train: bool, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        """torchvision's libsvm reader (bzip2's CRC catches a corrupt file)."""
        dataset = self._open(train)
        return torch.as_tensor(dataset.data), torch.as_tensor(dataset.targets).long()

    @property
    def class_names(self) -> list[str]:
        return list(string.digits)
