"""A folder of images in torchvision's ImageFolder layout, as a LabeledDataModule.

Layout: one sub-folder per class, its images anywhere below it (PNG, JPEG or BMP; gray or RGB):

    root/cat/001.png  root/cat/002.png  root/dog/a/xyz.jpg ...

Class names are the sub-folder names, sorted (class index = position, as torchvision's
`ImageFolder` numbers them). When `root` holds `train/` and `test/` folders, each is such a layout
and they are the two splits (the test classes must be among the train classes); otherwise a seeded,
stratified `test_fraction` of the items is held out for testing. Files are sorted by class, then by
path, so the same folder always gives the same order.

Pixels become float images as in the built-in loaders (`otdata.data.pixels`): `(n, C, S, S)` in
[0, 1]. Images of different sizes need `image_size` (each is resized to `image_size × image_size`);
without it, they are refused with the sizes found. Decoding runs in `workers` processes and is
cached under `cache_dir` (see `otdata.data.image_decode`).

Example:
    >>> dm = ImageFolderDataModule(root="my_digits", image_size=28, cache_dir=".cache")
    >>> X, y = dm.tensors("train", flatten=True)      # (n, 784) for gray images
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from otdata.data.errors import DataFormatError
from otdata.data.image_decode import UndecodableImages, decode_images
from otdata.data.pixels import MixedSizes, stack_pixels
from otdata.data.user import Splits, UserDataModule

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def class_folders(folder: Path) -> list[Path]:
    """The class sub-folders of a layout, sorted by name (hidden folders are skipped)."""
    return sorted((e for e in folder.iterdir() if e.is_dir() and not e.name.startswith(".")),
                  key=lambda e: e.name)


def image_files(folder: Path) -> list[str]:
    """Every image file below `folder` (recursively), sorted by path (strings: folders of
    60,000 files are common, and `Path` objects would cost more than the scan)."""
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(parent, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


class ImageFolderDataModule(UserDataModule):
    """Labeled images from a folder with one sub-folder per class (see the module docstring).

    Args (beyond UserDataModule's and LabeledDataModule's):
        root: the folder (absolute, or relative to the working directory or else to `data_dir`).
        channels: 1 (grayscale) or 3 (RGB) to convert every image, or None: gray if every image is
            stored gray, else RGB (gray images then get three equal channels).
        workers: processes decoding the images.
        cache_dir: where decoded pixels are cached (`<cache_dir>/decoded-images/`); None = never.
    """

    def __init__(self, root: str | Path, *args, channels: int | None = None, workers: int = 2,
                 cache_dir: str | Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.root = self._resolve(Path(root).expanduser())
        if "name" not in kwargs or not kwargs["name"]:
            self.name = self.root.name
        self.channels = channels
        self.workers = int(workers)
        self.cache_dir = cache_dir

    def _resolve(self, root: Path) -> Path:
        for candidate in (root, self.data_dir / root):
            if candidate.is_dir():
                return candidate.resolve()
        tried = [root] if root.is_absolute() else [root, self.data_dir / root]
        raise DataFormatError(
            root.name or str(root), "the image folder does not exist.",
            "point `root` at a folder with one sub-folder of images per class (a relative path is "
            "looked up in the working directory, then under `paths.data_dir`).", tried)

    def layout(self) -> dict[str, Path]:
        """`{"train": ..., "test": ...}` when the root has both, else `{"all": root}`."""
        train, test = self.root / "train", self.root / "test"
        if train.is_dir() and test.is_dir():
            return {"train": train, "test": test}
        return {"all": self.root}

    def _scan(self, folder: Path, names: list[str] | None) -> tuple[list[str], list[str], list[int]]:
        classes = class_folders(folder)
        if not classes:
            loose = image_files(folder)
            problem = (f"{folder} has no class sub-folders" +
                       (f" ({len(loose)} images lie directly in it)." if loose else " and no images."))
            raise DataFormatError(self.name, problem, "put each class's images in a sub-folder named "
                                  "after the class: root/<class>/<image>.png.", [folder])
        found = [c.name for c in classes]
        if names is not None and set(found) - set(names):
            raise DataFormatError(
                self.name, f"{folder} has classes that the train split lacks: "
                f"{sorted(set(found) - set(names))}.",
                "give the test split the same class folders as the train split.", [folder])
        names = names or found
        files, labels = [], []
        for c in classes:
            members = image_files(c)
            if not members:
                raise DataFormatError(
                    self.name, f"the class folder {c.name!r} holds no image "
                    f"({', '.join(IMAGE_EXTENSIONS)}).",
                    "add images to it or remove the folder.", [c])
            files += members
            labels += [names.index(c.name)] * len(members)
        return names, files, labels

    def _stack(self, images: list[np.ndarray], files: list[str]) -> torch.Tensor:
        try:
            return stack_pixels(images, self.image_size)
        except MixedSizes as error:
            examples = [files[i] for i in error.examples.values()][:4]
            listed = ", ".join(f"{h}×{w} ({n} images, e.g. {Path(files[error.examples[(h, w)]]).name})"
                               for (h, w), n in error.sizes.most_common(4))
            raise DataFormatError(
                self.name, f"the images have {len(error.sizes)} different sizes: {listed}.",
                "resize them to one side with `image_size=<side>` (e.g. `source.image_size=28`).",
                examples) from error

    def read(self) -> Splits:
        names, found = None, {}
        for split, folder in self.layout().items():
            names, files, labels = self._scan(folder, names)
            found[split] = (files, labels)
        files = [f for fs, _ in found.values() for f in fs]
        try:
            images = decode_images(files, self.channels, self.workers, self.cache_dir, name=self.name)
        except UndecodableImages as error:
            reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in error.failures[:3])
            raise DataFormatError(
                self.name, f"{len(error.failures)} file(s) are not readable images ({reasons}).",
                "remove or replace the corrupt or truncated files.",
                [p for p, _ in error.failures]) from error
        X = self._stack(images, files)  # one channel count and size for every split
        data, start = {}, 0
        for split, (fs, labels) in found.items():
            data[split] = (X[start:start + len(fs)], torch.tensor(labels, dtype=torch.int64))
            start += len(fs)
        return Splits(data, names, [self.root])
