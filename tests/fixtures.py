"""Tiny datasets written in the real on-disk formats (IDX for the *NIST family, bzip2 libsvm for
USPS), so the datamodules are tested through torchvision's own readers, without any download."""

from __future__ import annotations

import bz2
import struct
from pathlib import Path

import numpy as np

IDX_UBYTE = 0x08


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format (big-endian header: magic, then one int per dim)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, IDX_UBYTE, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(header + array.tobytes())


def class_images(labels: np.ndarray, side: int, seed: int) -> np.ndarray:
    """Images whose bright square's position encodes the class, plus noise: easy to tell apart."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(len(labels), side, side))
    cells = int(np.ceil(np.sqrt(labels.max() + 1)))
    block = side // cells
    for i, c in enumerate(labels):
        r, q = divmod(int(c), cells)
        images[i, r * block:(r + 1) * block, q * block:(q + 1) * block] = 220
    return images.astype(np.uint8)


def balanced_labels(n: int, num_classes: int, offset: int = 0) -> np.ndarray:
    return (np.arange(n) % num_classes + offset).astype(np.uint8)


def write_mnist_like(root: Path, folder: str, n_train: int = 120, n_test: int = 40,
                     num_classes: int = 10, prefix: str = "", label_offset: int = 0,
                     transpose: bool = False, permutation: list[int] | None = None,
                     brightness: int = 0) -> Path:
    """`<root>/<folder>/raw/<prefix>{train,t10k}-{images-idx3,labels-idx1}-ubyte` with tiny data.

    `permutation[c]` draws label c with the picture of class `permutation[c]` (a class-permuted
    copy); `brightness` is added to every pixel (a shifted copy).
    """
    raw = root / folder / "raw"
    for split, n, seed in (("train", n_train, 0), ("t10k" if not prefix else "test", n_test, 1)):
        labels = balanced_labels(n, num_classes, label_offset)
        drawn = labels - label_offset
        if permutation is not None:
            drawn = np.asarray(permutation)[drawn]
        images = class_images(drawn, 28, seed)
        images = np.clip(images.astype(int) + brightness, 0, 255).astype(np.uint8)
        if transpose:
            images = images.transpose(0, 2, 1)
        write_idx(raw / f"{prefix}{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}{split}-labels-idx1-ubyte", labels)
    return root


def write_emnist_letters(root: Path, n_train: int = 130, n_test: int = 52) -> Path:
    """EMNIST letters as on disk: labels 1..26, images transposed."""
    return write_mnist_like(root, "EMNIST", n_train, n_test, num_classes=26,
                            prefix="emnist-letters-", label_offset=1, transpose=True)


def write_usps(root: Path, n_train: int = 100, n_test: int = 30) -> Path:
    """`<root>/USPS/usps.bz2` and `usps.t.bz2` in libsvm form: label 1..10, 256 values in [-1, 1]."""
    folder = root / "USPS"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("usps.bz2", n_train, 0), ("usps.t.bz2", n_test, 1)):
        labels = balanced_labels(n, 10)
        images = class_images(labels, 16, seed).reshape(n, -1) / 255.0 * 2 - 1
        lines = [
            f"{int(c) + 1} " + " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(row))
            for c, row in zip(labels, images)
        ]
        (folder / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    return root


def write_all_images(root: Path) -> Path:
    """Every image dataset otdata knows, tiny, under one data root."""
    for folder in ("MNIST", "KMNIST", "FashionMNIST"):
        write_mnist_like(root, folder)
    write_emnist_letters(root)
    write_usps(root)
    return root


def compose_config(overrides: list[str], output_dir: str | Path | None = None):
    """The composed otdata config, as `otdata <overrides>` would see it; `paths.output_dir` stands in
    for the Hydra run folder (which only exists inside a run)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from otdata.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


class Payload:
    """A crafted pickle: unpickling it calls `open(marker, "w")`, so the marker file appears only
    if the pickle ran (attack tests assert that it never does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
