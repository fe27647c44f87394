"""Your own data on real files: USPS's test split written as a PNG folder, an `.npz` and a saved
Hugging Face dataset, read back through `data=image_folder`, `arrays` and `hf`, and compared with the
built-in USPS loader (same tensors? same OTDD to MNIST?); and a colour 32×32 dataset written in
CIFAR-10's on-disk format.

    python experiments/your_own_data/record.py --data-dir ../shared/data --work outputs/your_own_data

Writes under `--work`: `usps_folder/<digit>/<index>.png`, `usps.npz`, `usps_hf/` (the same
`--n` USPS test images, a seeded stratified subsample, 16×16 as stored) and
`cifar_format/cifar-10-batches-py/` (USPS train images coloured and padded to 32×32 RGB), for the
command-line runs of RESULTS.md. Prints a Markdown table: for each format, the largest pixel
difference from the built-in loader's tensors (after putting the folder's class-by-class order back)
and the OTDD to `--n` MNIST training images (`DatasetDistance()` defaults, the `distance=gaussian`
config, in float32 and float64), relative to the built-in USPS's.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))   # the writers of tests/fixtures.py (real formats) are reused here
NAMES = [str(d) for d in range(10)]


def as_uint8(X: torch.Tensor) -> np.ndarray:
    """Gray float pixels `(n, 1, H, W)` read from uint8 back to uint8 (exact: they were k / 255)."""
    return (X[:, 0] * 255).round().byte().numpy()


def write_formats(images: np.ndarray, labels: np.ndarray, work: Path) -> dict[str, Path]:
    from tests.fixtures import write_hf_images, write_image_folder

    paths = {"image_folder": work / "usps_folder", "arrays": work / "usps.npz", "hf": work / "usps_hf"}
    if not paths["image_folder"].exists():
        write_image_folder(paths["image_folder"], images, labels, NAMES)
    np.savez(paths["arrays"], X=images, y=labels, class_names=np.array(NAMES))
    if not paths["hf"].exists():
        write_hf_images(paths["hf"], {"train": (images, labels)}, NAMES)
    return paths


def write_cifar_format(images: np.ndarray, labels: np.ndarray, root: Path) -> Path:
    """USPS images (uint8 16×16) as a CIFAR-10 batch folder: resized to 28, padded to 32, tinted."""
    from otdata.data.pixels import to_float_images

    gray = (to_float_images(torch.from_numpy(images), 28) * 255).round().byte().numpy()[:, 0]
    padded = np.pad(gray, ((0, 0), (2, 2), (2, 2)))
    tint = np.array([1.0, 0.6, 0.3])[None, :, None, None]   # orange digits on black
    rgb = (padded[:, None].astype(float) * tint).round().astype(np.uint8)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    half = len(labels) // 2
    parts = {f"data_batch_{i}": slice(None) for i in range(1, 6)}
    parts = {name: slice(i * half // 5, (i + 1) * half // 5) for i, name in enumerate(parts)}
    parts["test_batch"] = slice(half, None)
    for name, part in parts.items():
        batch = {"data": rgb[part].reshape(len(rgb[part]), -1), "labels": labels[part].tolist(),
                 "batch_label": name, "filenames": [f"{i}.png" for i in range(len(rgb))][part]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": NAMES}, protocol=2))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--work", default="outputs/your_own_data")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    from otdata.data import (ArraysDataModule, HFImageDataModule, ImageFolderDataModule,
                             MNISTDataModule, USPSDataModule)
    from otdata.distance import DatasetDistance

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    usps = USPSDataModule(args.data_dir, max_test_samples=args.n)
    stored = USPSDataModule(args.data_dir, image_size=None, max_samples=args.n, max_test_samples=args.n)
    X, labels = stored.tensors("test")   # the same seeded stratified subsample, 16×16 as stored
    paths = write_formats(as_uint8(X), labels.numpy(), work)
    X, labels = stored.tensors("train")
    write_cifar_format(as_uint8(X), labels.numpy(), work / "cifar_format")

    Xm, ym = MNISTDataModule(args.data_dir, max_samples=args.n).tensors("train", flatten=True)
    X_ref, y_ref = usps.tensors("test", flatten=True)
    distance, distance64 = DatasetDistance(), DatasetDistance(precision="float64")
    start = time.perf_counter()
    ref, ref64 = distance(X_ref, y_ref, Xm, ym), distance64(X_ref, y_ref, Xm, ym)
    rows = [("built-in `data=usps` (test split)", len(y_ref), "", ref.value, "", ref64.value, "",
             ref.converged and ref64.converged, time.perf_counter() - start)]
    common = dict(image_size=28, test_fraction=0.0)
    readers = {"image_folder": ImageFolderDataModule(paths["image_folder"], cache_dir=work / "cache", **common),
               "arrays": ArraysDataModule(paths["arrays"], **common),
               "hf": HFImageDataModule(paths["hf"], **common)}
    for kind, dm in readers.items():
        start = time.perf_counter()
        X, y = dm.tensors("train", flatten=True)
        Xr, yr = X_ref, y_ref
        if kind == "image_folder":   # class by class, then index order
            order = torch.sort(y_ref, stable=True).indices
            Xr, yr = X_ref[order], y_ref[order]
        assert torch.equal(y, yr), kind
        result, result64 = distance(X, y, Xm, ym), distance64(X, y, Xm, ym)
        rows.append((f"`data={kind}`", len(y), f"{float((X - Xr).abs().max()):.1e}", result.value,
                     f"{abs(result.value - ref.value) / ref.value:.1e}", result64.value,
                     f"{abs(result64.value - ref64.value) / ref64.value:.1e}",
                     result.converged and result64.converged, time.perf_counter() - start))
    print(f"OTDD to MNIST train ({len(ym)} images, seed 0), USPS test split ({args.n} images, seed 0)\n")
    print("| read through | n | max pixel diff | OTDD float32 | rel. diff | OTDD float64 | rel. diff | "
          "converged | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n, diff, value, gap, value64, gap64, converged, seconds in rows:
        print(f"| {name} | {n} | {diff} | {value:.6f} | {gap} | {value64:.9f} | {gap64} | {converged} "
              f"| {seconds:.1f} |")


if __name__ == "__main__":
    main()
