"""Content hashes, and an on-disk cache of computed tensors keyed by them.

Whatever is expensive to compute from data (text or image embeddings, distances) is stored under a
key that hashes the data's content and every setting that changes the result. Entries are written
atomically (a temporary file in the same folder, then ``os.replace``: a crash or a concurrent job
never leaves a half-written entry under the final name), read with ``torch.load(weights_only=True)``,
and an entry that cannot be read or whose stored key differs is recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

log = logging.getLogger(__name__)

__all__ = ["cached_tensor", "file_digest", "save_atomic", "tensor_digest", "texts_digest"]


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, read in blocks of 1 MiB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensor_digest(*tensors: Tensor | None) -> str:
    """sha256 of the dtypes, shapes and raw bytes of the given tensors."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 of a list of texts (order and boundaries included)."""
    h = hashlib.sha256()
    h.update(str(len(texts)).encode())
    for t in texts:
        data = t.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in ``path``'s folder, then an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_tensor(path: str | os.PathLike | None, key: dict, compute: Callable[[], Tensor],
                  what: str = "embeddings") -> Tensor:
    """The tensor stored at ``path`` under ``key``, or ``compute()`` (then stored there).

    ``path=None`` disables the cache. The stored entry is ``{"key": key, "embeddings": tensor}``;
    a missing, unreadable or differently keyed entry is recomputed."""
    if path is not None and Path(path).is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(stored, dict) and stored.get("key") == key:
                log.info("%s read from %s", what, path)
                return stored["embeddings"]
            log.warning("cache entry %s does not match its key; recomputing", path)
        except Exception as error:  # a truncated or foreign file: recompute
            log.warning("unreadable cache entry %s (%s); recomputing", path, error)
    value = compute()
    if path is not None:
        save_atomic({"key": key, "embeddings": value}, path)
        log.info("%s cached at %s", what, path)
    return value
