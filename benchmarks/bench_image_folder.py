"""Reading a folder of many small PNGs with `ImageFolderDataModule`: first read and cached read.

Usage: python benchmarks/bench_image_folder.py [--n 60000] [--side 28] [--workers 2] [--keep DIR]
(prints a markdown table; the numbers live in benchmarks/RESULTS.md)

Writes `--n` grayscale `--side`×`--side` PNGs (10 class folders, MNIST-like sizes) to a temporary
folder, then times, each in a fresh datamodule: the first read (scan, decode in `--workers`
processes, write the decoded-pixel cache, build the float tensors) and the cached read (scan, stat
every file for the cache key, load the cache, build the tensors). Also the first read with one
worker, for the speed-up of parallel decoding. Peak RSS of the process is reported at the end.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def write_pngs(root: Path, n: int, side: int, seed: int = 0) -> float:
    """`n` PNGs under `root/<class>/`; returns the seconds it took."""
    from PIL import Image

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    for c in range(10):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(side, side), dtype=np.uint8)
        pixels[:, : side // 2] //= 4   # some structure, so PNG compresses as for real digits
        Image.fromarray(pixels, mode="L").save(root / f"class_{i % 10}" / f"{i:06d}.png")
    return time.perf_counter() - start


def timed_read(root: Path, cache: Path, workers: int) -> tuple[float, tuple]:
    from otdata.data.image_folder import ImageFolderDataModule

    start = time.perf_counter()
    dm = ImageFolderDataModule(root, workers=workers, cache_dir=cache, test_fraction=0.0)
    X, y = dm.tensors("train")
    return time.perf_counter() - start, tuple(X.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--side", type=int, default=28)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", help="write the PNGs here and keep them (default: a temp folder)")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-image-folder-"))
    root, rows = work / "images", []
    try:
        write_s = write_pngs(root, args.n, args.side)
        for label, workers, cache in (
                (f"first read, {args.workers} workers", args.workers, work / "cache"),
                (f"cached read, {args.workers} workers", args.workers, work / "cache"),
                ("first read, 1 worker", 1, work / "cache-1")):
            seconds, shape = timed_read(root, cache, workers)
            rows.append((label, seconds, shape))
        print(f"{args.n:,} PNGs of {args.side}×{args.side} written in {write_s:.1f} s\n")
        print("| read | seconds | images/s | X shape |\n|---|---|---|---|")
        for label, seconds, shape in rows:
            print(f"| {label} | {seconds:.2f} | {args.n / seconds:,.0f} | {shape} |")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak RSS of this process: {peak:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
