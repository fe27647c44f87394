"""Reading the *NIST family's IDX files (plain or gzipped) and checking them against the official
releases.

A file of the official size must have the official md5: a file of the right size filled with
garbage would otherwise load as images. The md5 is computed the first time a file is read and the
verdict is cached in memory and in `<OTDATA_CACHE_DIR or the user cache folder>/verified-files.json`,
so later runs do not hash the same 47 MB again. The verdict is keyed by absolute path, size,
modification time, inode and status-change time: size and modification time alone can be kept by
accident (bytes rewritten in place, then `touch -r` or a tool that restores timestamps), but the
status-change time (ctime) cannot be set by a user (every write and every `utime` moves it) and a
replaced file has a new inode, so such a file is hashed again. Files of another size (a subset,
such as a partial KMNIST train split) are not the official release and are read as they are; their
header must still match their length.
Gzipped files (`<name>.gz`, as MNIST and EMNIST are distributed) are checked by gzip's own CRC and
then like plain ones.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import struct
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: (size in bytes, md5) of the official uncompressed files, by dataset folder and file name: MNIST
#: and Fashion-MNIST as distributed (the files torchvision extracts from its md5-checked archives);
#: KMNIST's test split likewise. No per-file md5 is published for EMNIST (only its zip's) or for
#: KMNIST's uncompressed train split: those are checked for structure only.
OFFICIAL: dict[str, dict[str, tuple[int, str]]] = {
    "MNIST": {
        "train-images-idx3-ubyte": (47040016, "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": (60008, "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": (7840016, "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": (10008, "27ae3e4e09519cfbb04c329615203637"),
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": (47040016, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte": (60008, "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte": (7840016, "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte": (10008, "15d484375f8d13e6eb1aabb0c3f46965"),
    },
    "KMNIST": {
        "t10k-images-idx3-ubyte": (7840016, "bf305b8cd328700fbc17f5acbc2856d2"),
        "t10k-labels-idx1-ubyte": (10008, "9f55f451c0988b028eccdf7d5cc265ab"),
    },
}

_VERDICTS: dict[str, dict] = {}


class IDXError(ValueError):
    """An IDX file is malformed or differs from the official release."""


def locate(path: Path) -> Path | None:
    """`path`, else `path.gz`, else `<folder>/gzip/<name>.gz` (EMNIST's zip layout), else None."""
    for candidate in (path, path.with_name(path.name + ".gz"),
                      path.parent / "gzip" / (path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _cache_file() -> Path:
    root = os.environ.get("OTDATA_CACHE_DIR")
    if not root:
        try:
            import platformdirs

            root = platformdirs.user_cache_dir("otdata", appauthor=False)
        except ImportError:  # pragma: no cover - platformdirs comes with wandb
            root = str(Path.home() / ".cache" / "otdata")
    return Path(root) / "verified-files.json"


def _load_verdicts(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return {}


def _store_verdict(key: str, verdict: dict) -> None:
    _VERDICTS[key] = verdict
    file = _cache_file()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        stored = _load_verdicts(file)
        stored[key] = verdict
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=file.name, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle, indent=1)
        os.replace(tmp, file)
    except OSError as error:  # a read-only cache only costs a re-check next time
        log.debug("could not record the md5 verdict in %s: %s", file, error)


def _cached_verdict(key: str, stamp: dict) -> dict | None:
    verdict = _VERDICTS.get(key) or _load_verdicts(_cache_file()).get(key)
    if verdict and all(verdict.get(k) == v for k, v in stamp.items()):
        _VERDICTS[key] = verdict
        return verdict
    return None


def check_official(path: Path, data: bytes, folder: str, name: str) -> None:
    """Raise `IDXError` when `data` has an official file's size but not its md5 (cached verdict)."""
    official = OFFICIAL.get(folder, {}).get(name)
    if official is None or len(data) != official[0]:
        return
    stat = path.stat()
    key = str(path.resolve())
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino,
             "ctime_ns": stat.st_ctime_ns, "md5": official[1]}
    verdict = _cached_verdict(key, stamp)
    if verdict is None:
        digest = hashlib.md5(data).hexdigest()
        verdict = {**stamp, "ok": digest == official[1], "found": digest}
        _store_verdict(key, verdict)
    if not verdict["ok"]:
        raise IDXError(
            f"{path.name} has the size of the official {folder} file but not its content "
            f"(md5 {verdict['found']}, expected {official[1]}): it is corrupt or not {folder}")


def parse_idx(data: bytes) -> torch.Tensor:
    """An unsigned-byte IDX file's array; the header must announce exactly the file's length."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IDXError("not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise IDXError(f"IDX element type 0x{data[2]:02x}, expected unsigned bytes (0x08)")
    ndim = data[3]
    if not 1 <= ndim <= 3 or len(data) < 4 + 4 * ndim:
        raise IDXError(f"IDX header with {ndim} dimensions is truncated or invalid")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = offset + int(torch.tensor(dims, dtype=torch.int64).prod())
    if len(data) != expected:
        raise IDXError(f"{len(data)} bytes but its header {list(dims)} announces {expected} "
                       "(truncated or padded)")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(dims)


def read_idx(path: Path, folder: str) -> torch.Tensor:
    """Read (and, for official names and sizes, md5-check) an IDX file, plain or `.gz`."""
    raw = path.read_bytes()
    name = path.name
    if name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise IDXError(f"{name} is not a valid gzip file ({error})") from error
        name = name[:-3]
    check_official(path, raw, folder, name)
    return parse_idx(raw)
