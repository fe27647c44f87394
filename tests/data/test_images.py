"""The image datamodules read real-format files and hand out tensors with the promised shapes."""

from __future__ import annotations

import shutil

import pytest
import torch

from otdata.data import (
    DataFileError,
    EMNISTDataModule,
    FashionMNISTDataModule,
    KMNISTDataModule,
    MNISTDataModule,
    USPSDataModule,
)

ALL = [MNISTDataModule, KMNISTDataModule, FashionMNISTDataModule, EMNISTDataModule, USPSDataModule]


@pytest.mark.parametrize("cls", ALL)
def test_tensors_shapes_dtypes_and_label_range(cls, data_root):
    dm = cls(data_dir=data_root)
    for split in ("train", "test"):
        X, y = dm.tensors(split)
        assert X.dtype == torch.float32 and y.dtype == torch.int64
        assert X.shape[1:] == (1, 28, 28)
        assert 0.0 <= X.min() and X.max() <= 1.0
        assert y.min() == 0 and y.max() == dm.num_classes - 1
    assert len(dm.class_names) == dm.num_classes


def test_emnist_letters_are_zero_based_and_upright(data_root):
    dm = EMNISTDataModule(data_dir=data_root)
    X, y = dm.tensors("train")
    assert dm.num_classes == 26 and dm.class_names[0] == "a" and dm.class_names[-1] == "z"
    assert sorted(y.unique().tolist()) == list(range(26))
    # The fixture draws class c's bright block at row c // 6, column c % 6 before transposing on
    # disk; an upright image has it back there.
    img = X[y == 1][0, 0]  # class "b": block at row 0, column 1 (blocks of 28 // 6 = 4 pixels)
    assert img[0:4, 4:8].mean() > 0.8 and img[4:8, 0:4].mean() < 0.3


def test_usps_is_resized_from_16_to_28(data_root):
    X, _ = USPSDataModule(data_dir=data_root).tensors("train")
    assert X.shape == (100, 1, 28, 28)
    X16, _ = USPSDataModule(data_dir=data_root, image_size=None).tensors("train")
    assert X16.shape == (100, 1, 16, 16)
    assert torch.allclose(X.mean(), X16.mean(), atol=0.02)


def test_stratified_subsample_counts_and_determinism(data_root):
    dm = MNISTDataModule(data_dir=data_root, max_samples=50, seed=3)
    X, y = dm.tensors("train")
    assert len(y) == 50
    assert torch.bincount(y).tolist() == [5] * 10  # 120 balanced items → 5 of each class
    X2, y2 = MNISTDataModule(data_dir=data_root, max_samples=50, seed=3).tensors("train")
    assert torch.equal(X, X2) and torch.equal(y, y2)
    X3, _ = MNISTDataModule(data_dir=data_root, max_samples=50, seed=4).tensors("train")
    assert not torch.equal(X, X3)


def test_flatten_and_normalize(data_root):
    X, _ = MNISTDataModule(data_dir=data_root).tensors("test", flatten=True)
    assert X.shape == (40, 784)
    Xn, _ = MNISTDataModule(data_dir=data_root, normalize=True, mean=0.5, std=0.25).tensors(
        "test", flatten=True
    )
    assert torch.allclose(Xn, (X - 0.5) / 0.25, atol=1e-6)


def test_lightning_dataloaders_split_train_and_val(data_root):
    dm = MNISTDataModule(data_dir=data_root, val_fraction=0.25, batch_size=16)
    dm.setup("fit")
    assert len(dm.train_set) == 90 and len(dm.val_set) == 30
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 28, 28) and y.shape == (16,)
    assert len(dm.test_dataloader().dataset) == 40


def test_missing_file_error_names_file_root_and_fixes(tmp_path):
    with pytest.raises(DataFileError) as info:
        KMNISTDataModule(data_dir=tmp_path).tensors("train")
    message = str(info.value)
    assert "KMNIST/raw/train-images-idx3-ubyte" in message
    assert str(tmp_path.resolve()) in message
    assert "paths.data_dir" in message and "download=true" in message


def test_corrupt_file_error(data_root, tmp_path):
    shutil.copytree(data_root / "MNIST", tmp_path / "MNIST")
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # truncated
    with pytest.raises(DataFileError, match="could not read the train split"):
        MNISTDataModule(data_dir=tmp_path).tensors("train")


def test_corrupt_usps_error(tmp_path):
    (tmp_path / "USPS").mkdir()
    (tmp_path / "USPS" / "usps.bz2").write_bytes(b"not bzip2")
    with pytest.raises(DataFileError, match="usps.bz2"):
        USPSDataModule(data_dir=tmp_path).tensors("train")


def test_bad_split_name(data_root):
    with pytest.raises(ValueError, match="split must be one of"):
        MNISTDataModule(data_dir=data_root).tensors("validation")
