"""Data files: official sizes must carry official md5s (verdict cached), gzipped IDX files are read,
error messages list absolute paths, and sample sizes must be positive."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
import torch

from otdata.data import DataFileError, EMNISTDataModule, MNISTDataModule
from otdata.data import idx
from tests.fixtures import write_emnist_letters, write_idx


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OTDATA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "_VERDICTS", {})


def _garbage_official_test_split(root):
    """MNIST's test split at the official sizes (7,840,016 + 10,008 bytes) with valid headers,
    labels in 0..9 and random pixels: everything but the md5 looks right."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10000, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 10000))
    assert (raw / "t10k-images-idx3-ubyte").stat().st_size == idx.OFFICIAL["MNIST"][
        "t10k-images-idx3-ubyte"][0]


def test_garbage_of_the_official_size_is_refused_and_the_verdict_cached(tmp_path, monkeypatch):
    _garbage_official_test_split(tmp_path)
    with pytest.raises(DataFileError, match=r"size of the official MNIST file but not its content"):
        MNISTDataModule(data_dir=tmp_path).tensors("test")
    stored = json.loads((tmp_path / "cache" / "verified-files.json").read_text())
    assert {v["ok"] for v in stored.values()} == {False}
    # the next run (fresh process: empty memory) uses the stored verdict and hashes nothing
    monkeypatch.setattr(idx, "_VERDICTS", {})
    monkeypatch.setattr(idx.hashlib, "md5", lambda *a: pytest.fail("md5 computed again"))
    with pytest.raises(DataFileError, match="not its content"):
        MNISTDataModule(data_dir=tmp_path).tensors("test")


def test_a_changed_file_is_checked_again(tmp_path):
    _garbage_official_test_split(tmp_path)
    with pytest.raises(DataFileError):
        MNISTDataModule(data_dir=tmp_path).tensors("test")
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-784])  # not the official size any more: structure only
    with pytest.raises(DataFileError, match="announces"):
        MNISTDataModule(data_dir=tmp_path).tensors("test")


def test_files_of_another_size_are_read_as_they_are(data_root):
    X, y = MNISTDataModule(data_dir=data_root).tensors("test")  # the tiny generated files
    assert len(X) == len(y) == 40


@pytest.mark.parametrize("layout", ["raw", "raw/gzip"])
def test_emnist_as_distributed_gz_files(layout, tmp_path):
    plain = write_emnist_letters(tmp_path / "plain")
    root = tmp_path / "gz"
    target = root / "EMNIST" / layout
    target.mkdir(parents=True)
    for f in (plain / "EMNIST" / "raw").iterdir():
        (target / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    X, y = EMNISTDataModule(data_dir=root).tensors("train")
    X0, y0 = EMNISTDataModule(data_dir=plain).tensors("train")
    assert torch.equal(X, X0) and torch.equal(y, y0)


def test_corrupt_gz_is_a_clear_error(tmp_path):
    write_emnist_letters(tmp_path)
    raw = tmp_path / "EMNIST" / "raw"
    f = raw / "emnist-letters-train-images-idx3-ubyte"
    (raw / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes())[:-20])
    f.unlink()
    with pytest.raises(DataFileError, match="not a valid gzip file"):
        EMNISTDataModule(data_dir=tmp_path).tensors("train")


def test_missing_files_are_listed_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFileError) as info:
        MNISTDataModule(data_dir="relative/data").tensors("train")
    listed = [line.strip()[2:] for line in str(info.value).splitlines() if line.strip().startswith("- ")]
    assert listed and all(line.startswith(str(tmp_path.resolve())) for line in listed)


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_sample_sizes_must_be_positive_integers(size, data_root):
    with pytest.raises(ValueError, match=r"sample sizes must be positive integers.*task.n_source"):
        MNISTDataModule(data_dir=data_root).tensors("train", max_samples=size)
    with pytest.raises(ValueError, match="positive integers"):
        MNISTDataModule(data_dir=data_root, max_samples=size)


def test_bytes_replaced_with_size_and_mtime_kept_are_hashed_again(tmp_path, monkeypatch):
    """A verified file whose bytes are rewritten in place, with its size and modification time
    restored (`touch -r`), is hashed again: the verdict is keyed on inode and ctime too."""
    import hashlib
    import os
    import time

    rng = np.random.default_rng(1)
    raw = tmp_path / "MNIST" / "raw"
    images = raw / "t10k-images-idx3-ubyte"
    write_idx(images, rng.integers(0, 256, (50, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 50))
    official = {"t10k-images-idx3-ubyte": (images.stat().st_size,
                                           hashlib.md5(images.read_bytes()).hexdigest())}
    monkeypatch.setitem(idx.OFFICIAL, "MNIST", official)  # these bytes play the official file
    X, _ = MNISTDataModule(data_dir=tmp_path).tensors("test")
    assert len(X) == 50  # verified, and the verdict cached
    before = images.stat()
    time.sleep(0.01)
    data = bytearray(images.read_bytes())
    data[-784:] = bytes(784)  # one image zeroed: same size, other content
    with open(images, "r+b") as handle:
        handle.write(data)
    os.utime(images, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert images.stat().st_size == before.st_size
    assert images.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(DataFileError, match="size of the official MNIST file but not its content"):
        MNISTDataModule(data_dir=tmp_path).tensors("test")
