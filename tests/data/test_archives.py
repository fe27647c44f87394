"""CIFAR-10/100, SVHN and STL-10 read from torchvision's on-disk formats give torchvision's own
pixels and labels (its readers, with the md5 check of the official files switched off for the tiny
fixtures), and a tampered CIFAR batch never runs code."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torchvision import datasets
from torchvision.datasets import cifar

from otdata.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DataFileError,
    STL10DataModule,
    SVHNDataModule,
)
from tests.fixtures import Payload, write_cifar, write_stl10, write_svhn


def torchvision_reference(cls, root, train: bool, monkeypatch):
    """`(uint8 (n, 3, H, W), labels)` as torchvision's class reads the same files."""
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True, raising=False)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    if cls is datasets.SVHN:
        ds = cls(str(root / "SVHN"), split="train" if train else "test")
        return torch.from_numpy(ds.data), torch.as_tensor(ds.labels)
    if cls is datasets.STL10:
        ds = cls(str(root), split="train" if train else "test")
        return torch.from_numpy(ds.data), torch.as_tensor(ds.labels)
    ds = cls(str(root), train=train)
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.as_tensor(ds.targets)


@pytest.mark.parametrize("module,reference,write", [
    (CIFAR10DataModule, datasets.CIFAR10, write_cifar),
    (CIFAR100DataModule, datasets.CIFAR100, lambda root: write_cifar(root, hundred=True)),
    (SVHNDataModule, datasets.SVHN, write_svhn),
    (STL10DataModule, datasets.STL10, write_stl10),
])
def test_same_pixels_and_labels_as_torchvision(module, reference, write, tmp_path, monkeypatch):
    write(tmp_path)
    dm = module(data_dir=tmp_path, image_size=None)
    for split, train in (("train", True), ("test", False)):
        X, y = dm.tensors(split)
        images, labels = torchvision_reference(reference, tmp_path, train, monkeypatch)
        assert X.shape == images.shape and X.shape[1] == 3
        assert torch.equal(y, labels.long())
        assert torch.equal(X, images.float() / 255)
    assert len(dm.class_names) == (100 if module is CIFAR100DataModule else 10)


def test_svhn_digit_zero_is_label_zero(tmp_path):
    write_svhn(tmp_path)
    _, y = SVHNDataModule(data_dir=tmp_path).tensors("train")
    assert y.min() == 0 and y.max() == 9 and int((y == 0).sum()) == 3


def test_cifar_class_names_and_resize(tmp_path):
    write_cifar(tmp_path)
    dm = CIFAR10DataModule(data_dir=tmp_path, image_size=28)
    X, _ = dm.tensors("test")
    assert X.shape == (20, 3, 28, 28) and dm.class_names[:2] == ["class0", "class1"]


def test_a_tampered_cifar_batch_never_runs_code(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "ran"
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Payload(marker)}))
    with pytest.raises(DataFileError, match="only numpy arrays and lists"):
        CIFAR10DataModule(data_dir=tmp_path).tensors("test")
    assert not marker.exists()


def test_missing_archive_names_the_files(tmp_path):
    with pytest.raises(DataFileError, match="stl10_binary/test_X.bin"):
        STL10DataModule(data_dir=tmp_path).tensors("test")
