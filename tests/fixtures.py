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


def compose_config(overrides: list[str], output_dir: str | Path | None = None, hydra_config: bool = False):
    """The composed otdata config, as `otdata <overrides>` would see it; `paths.output_dir` stands in
    for the Hydra run folder (which only exists inside a run). `hydra_config`: with the `hydra` node
    (launcher, sweeper), as a run sees it. Every test that composes a config calls this one."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from otdata.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=hydra_config)
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


# -- the formats of a user's own data and of torchvision's colour datasets ---------------------------

def rgb_class_images(labels: np.ndarray, side: int, seed: int) -> np.ndarray:
    """uint8 `(n, 3, side, side)`: `class_images` with a different brightness per channel."""
    gray = class_images(labels, side, seed).astype(int)
    return np.stack([gray, gray // 2 + 60, 255 - gray], axis=1).astype(np.uint8)


def write_image_folder(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str],
                       fmt: str = "png") -> Path:
    """`root/<class name>/<index>.<fmt>` for uint8 images `(n, H, W)` or `(n, 3, H, W)`."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        array = image.transpose(1, 2, 0) if image.ndim == 3 else image
        Image.fromarray(np.ascontiguousarray(array)).save(folder / f"{i:05d}.{fmt}")
    return root


def write_hf_images(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], names: list[str]) -> Path:
    """A `DatasetDict.save_to_disk` folder with an `image` (Image) and a `label` (ClassLabel) column."""
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    built = {s: datasets.Dataset.from_dict(
        {"image": [Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0) if a.ndim == 3 else a))
                   for a in X], "label": [int(v) for v in y]}, features=features)
        for s, (X, y) in splits.items()}
    datasets.disable_progress_bars()
    datasets.DatasetDict(built).save_to_disk(str(path))
    return path


def write_cifar(root: Path, hundred: bool = False, n_train: int = 50, n_test: int = 20) -> Path:
    """`cifar-10-batches-py/` (5 train batches) or `cifar-100-python/`, pickled as the releases are."""
    import pickle

    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    classes = 100 if hundred else 10
    key = "fine_labels" if hundred else "labels"
    names = [f"class{c}" for c in range(classes)]
    splits = {"train": (n_train, 0), "test": (n_test, 1)}
    for split, (n, seed) in splits.items():
        labels = (np.arange(n) % classes).astype(np.int64)
        data = rgb_class_images(labels % 10, 32, seed).reshape(n, -1)
        files = ([f"data_batch_{i}" for i in range(1, 6)] if split == "train" and not hundred
                 else ["test_batch" if not hundred else "test"] if split == "test" else ["train"])
        for i, name in enumerate(files):
            part = slice(i * n // len(files), (i + 1) * n // len(files))
            batch = {"data": data[part], key: labels[part].tolist(), "batch_label": name,
                     "filenames": [f"{j}.png" for j in range(n)][part]}
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"fine_label_names" if hundred else "label_names": names}
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta, protocol=2))
    return root


def write_svhn(root: Path, n_train: int = 30, n_test: int = 20) -> Path:
    """`SVHN/{train,test}_32x32.mat`: X `(32, 32, 3, n)` uint8, y `(n, 1)` in 1..10 (10 = digit 0)."""
    from scipy.io import savemat

    (root / "SVHN").mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rgb_class_images(labels, 32, seed)
        savemat(root / "SVHN" / f"{split}_32x32.mat",
                {"X": images.transpose(2, 3, 1, 0), "y": np.where(labels == 0, 10, labels)[:, None]})
    return root


def write_stl10(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """`stl10_binary/{train,test}_{X,y}.bin` (images stored column-major) and `class_names.txt`."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rgb_class_images(labels, 96, seed)
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())
        (folder / f"{split}_y.bin").write_bytes((labels + 1).tobytes())
    (folder / "class_names.txt").write_text("\n".join(f"stl{c}" for c in range(10)) + "\n")
    return root


def write_zhang_csv(root: Path, folder: str, text_fields: int, num_classes: int, n: int = 20) -> Path:
    """`<folder>/{train,test}.csv` in the Zhang et al. format: label 1..C, quoted text fields."""
    import csv

    (root / folder).mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        with (root / folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
            for i in range(n):
                label = i % num_classes + 1
                writer.writerow([label] + [f"text {label} field {f}\\nline {i}" for f in range(text_fields)])
    return root


#: what a user's-data config needs besides the data root, by option (files from `write_user_data`)
USER_DATA_OVERRIDES = {
    "image_folder": ["root=my_images"], "arrays": ["path=my_arrays.npz"], "hf": ["path=my_hf"],
    "hf_text": ["path=my_hf_text"], "text_csv": ["train_file=my_texts.csv", "header=true",
                                                 "label_column=label", "text_columns=[text]"],
}


def write_user_data(root: Path) -> Path:
    """Tiny files for every `data` option that is not a built-in *NIST dataset."""
    import datasets

    labels = balanced_labels(40, 4).astype(np.int64)
    images = class_images(labels, 16, seed=2)
    names = ["a", "b", "c", "d"]
    write_image_folder(root / "my_images", images, labels, names)
    np.savez(root / "my_arrays.npz", X=images, y=labels, class_names=np.array(names))
    write_hf_images(root / "my_hf", {"train": (images[:30], labels[:30]), "test": (images[30:], labels[30:])},
                    names)
    texts = [f"item {i} of class {names[c]}" for i, c in enumerate(labels)]
    datasets.Dataset.from_dict({"text": texts, "label": labels.tolist()}).save_to_disk(str(root / "my_hf_text"))
    rows = "label,text\n" + "".join(f"{names[c]},\"{t}\"\n" for c, t in zip(labels, texts))
    (root / "my_texts.csv").write_text(rows)
    write_cifar(root)
    write_cifar(root, hundred=True)
    write_svhn(root)
    write_stl10(root)
    write_zhang_csv(root, "amazon_review_polarity_csv", 2, 2)
    write_zhang_csv(root, "amazon_review_full_csv", 2, 5)
    write_zhang_csv(root, "yahoo_answers_csv", 3, 10)
    return root


def run_notebook(path, tmp_path) -> tuple[str, list]:
    """Execute a notebook top to bottom in `tmp_path` (the caller sets its environment) and return
    the text of its printed output and all its code cells' outputs; a cell that raises fails the
    test."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream"), outputs
