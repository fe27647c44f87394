"""Decoding many image files (PNG, JPEG, BMP) into uint8 arrays, in parallel, cached on disk.

`decode_images(paths, channels, workers, cache_dir)` returns one uint8 array per file, `(H, W)` for
a grayscale image and `(H, W, 3)` for a colour one (`channels=1` or `3` converts every image with
Pillow's own conversion, `None` keeps each as stored: gray stays gray, anything else becomes RGB).
Files are decoded by `workers` processes in chunks (decoding is CPU-bound and holds the GIL).

With a `cache_dir`, the decoded pixels are stored in one file under `<cache_dir>/decoded-images/`,
keyed by the files' absolute paths, sizes and modification times and by `channels`: a second read
of an unchanged folder loads that file (`torch.load(weights_only=True)`) instead of decoding, and
any added, removed, touched or replaced file makes a new entry. The entry is written atomically
(`otdata.data.content_cache.save_atomic`), so an interrupted run never leaves a half-written cache.

A file that cannot be decoded (corrupt, truncated, not an image) is reported, with every other
such file, as `UndecodableImages`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from otdata.data.content_cache import save_atomic

log = logging.getLogger(__name__)

CACHE_VERSION = 1
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


class UndecodableImages(ValueError):
    """Some files could not be decoded; `failures` holds `(path, reason)` for each."""

    def __init__(self, failures: list[tuple[str, str]]):
        self.failures = failures
        super().__init__(f"{len(failures)} image file(s) could not be decoded")


def pil_to_array(image, channels: int | None = None) -> np.ndarray:
    """A decoded PIL image as uint8 `(H, W)` (gray) or `(H, W, 3)` (RGB), see `decode_images`."""
    if channels == 1 or (channels is None and image.mode in GRAY_MODES):
        mode = "L"
    else:
        mode = "RGB"
    return np.asarray(image.convert(mode) if image.mode != mode else image, dtype=np.uint8)


def _decode_one(path: str, channels: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # decode now: a truncated file fails here, not later
        return pil_to_array(image, channels)


def _decode_chunk(paths: Sequence[str], channels: int | None) -> list[np.ndarray | str]:
    """Decoded arrays, or the reason as a string for a file that failed (reported together)."""
    out: list[np.ndarray | str] = []
    for path in paths:
        try:
            out.append(_decode_one(path, channels))
        except Exception as error:  # PIL raises many kinds: report them all at once
            out.append(f"{type(error).__name__}: {error}")
    return out


def _decode_all(paths: list[str], channels: int | None, workers: int) -> list[np.ndarray]:
    chunk = max(1, min(2048, -(-len(paths) // max(1, 4 * workers))))
    pieces = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    if workers <= 1 or len(pieces) == 1:
        decoded = [a for piece in pieces for a in _decode_chunk(piece, channels)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            decoded = [a for part in pool.map(_decode_chunk, pieces, [channels] * len(pieces))
                       for a in part]
    failures = [(p, a) for p, a in zip(paths, decoded) if isinstance(a, str)]
    if failures:
        raise UndecodableImages(failures)
    return decoded


def cache_key(paths: Sequence[str], channels: int | None) -> str:
    """sha256 of what the decoded pixels depend on: each file's path, size, mtime, inode and
    status-change time, and `channels`. Bytes rewritten in place with size and mtime restored still
    change the status-change time (as for the data files' md5 verdicts)."""
    h = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "channels": channels}).encode())
    for path in paths:
        stat = os.stat(path)
        h.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}\0{stat.st_ctime_ns}\n".encode())
    return h.hexdigest()[:24]


def _pack(images: list[np.ndarray]) -> dict[str, torch.Tensor]:
    shapes = np.array([a.shape + (1,) * (3 - a.ndim) for a in images], dtype=np.int64).reshape(-1, 3)
    flat = np.concatenate([a.reshape(-1) for a in images]) if images else np.zeros(0, np.uint8)
    return {"pixels": torch.from_numpy(flat), "shapes": torch.from_numpy(shapes),
            "ndim": torch.tensor([a.ndim for a in images], dtype=torch.int8)}


def _unpack(stored: dict) -> list[np.ndarray]:
    pixels, shapes, ndims = (stored[k].numpy() for k in ("pixels", "shapes", "ndim"))
    ends = np.cumsum(shapes.prod(axis=1))
    starts = ends - shapes.prod(axis=1)
    return [pixels[s:e].reshape(shape[:nd]) for s, e, shape, nd in zip(starts, ends, shapes, ndims)]


def decode_images(paths: Sequence[str | Path], channels: int | None = None, workers: int = 2,
                  cache_dir: str | Path | None = None, name: str = "images") -> list[np.ndarray]:
    """One uint8 array per file (see the module docstring), from the cache when it is current."""
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None (as stored), got {channels!r}.")
    paths = [os.path.abspath(p) for p in paths]
    entry = None
    if cache_dir is not None:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "images"
        key = cache_key(paths, channels)
        entry = Path(cache_dir) / "decoded-images" / f"{slug}-{key}.pt"
        if entry.is_file():
            try:
                stored = torch.load(entry, map_location="cpu", weights_only=True)
                if stored.get("key") == key and len(stored["ndim"]) == len(paths):
                    log.info("decoded %s read from %s", name, entry)
                    return _unpack(stored)
            except Exception as error:  # a foreign or damaged entry: decode again
                log.warning("unreadable decoded-image cache %s (%s); decoding again", entry, error)
    images = _decode_all(paths, channels, workers)
    if entry is not None:
        try:
            save_atomic({"key": key, **_pack(images)}, entry)
            log.info("decoded %s cached at %s", name, entry)
        except OSError as error:  # a read-only cache only costs a decode next time
            log.warning("could not cache the decoded %s at %s: %s", name, entry, error)
    return images
