"""The same images read through data=image_folder, arrays and hf give the very tensors (and the same
OTDD) as the built-in loader they were written from: USPS's test split, as torchvision reads it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otdata.data import (
    ArraysDataModule,
    HFImageDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    USPSDataModule,
)
from otdata.distance import DatasetDistance
from tests.fixtures import write_hf_images, write_image_folder

NAMES = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def usps_copies(data_root, tmp_path_factory):
    """USPS test as stored (uint8 16×16), written as a PNG folder, an .npz and a saved HF dataset."""
    X, labels = USPSDataModule(data_dir=data_root, image_size=None).tensors("test")
    images, labels = (X[:, 0] * 255).round().byte().numpy(), labels.numpy()   # exact: pixels were k / 255
    root = tmp_path_factory.mktemp("usps_copies")
    write_image_folder(root / "folder", images, labels, NAMES)
    np.savez(root / "usps.npz", X=images, y=labels, class_names=np.array(NAMES))
    write_hf_images(root / "hf", {"train": (images, labels)}, NAMES)
    common = dict(image_size=28, test_fraction=0.0)
    return {
        "image_folder": ImageFolderDataModule(root / "folder", cache_dir=root / "cache", **common),
        "arrays": ArraysDataModule(root / "usps.npz", **common),
        "hf": HFImageDataModule(root / "hf", **common),
    }


@pytest.mark.parametrize("kind", ["image_folder", "arrays", "hf"])
def test_same_tensors_as_the_builtin_loader(kind, usps_copies, data_root):
    X_ref, y_ref = USPSDataModule(data_dir=data_root).tensors("test")
    X, y = usps_copies[kind].tensors("train")
    if kind == "image_folder":  # a folder lists class by class, files in index order
        order = torch.sort(y_ref, stable=True).indices
        X_ref, y_ref = X_ref[order], y_ref[order]
    assert X.dtype == torch.float32 and X.shape == X_ref.shape == (30, 1, 28, 28)
    assert torch.equal(y, y_ref)
    assert torch.equal(X, X_ref)  # bit for bit: one pixel path (otdata.data.pixels)
    assert usps_copies[kind].class_names == NAMES


@pytest.mark.parametrize("kind", ["image_folder", "arrays", "hf"])
def test_same_otdd_to_mnist(kind, usps_copies, data_root, one_thread):
    Xm, ym = MNISTDataModule(data_dir=data_root).tensors("test", flatten=True)
    X_ref, y_ref = USPSDataModule(data_dir=data_root).tensors("test", flatten=True)
    X, y = usps_copies[kind].tensors("train", flatten=True)
    distance = DatasetDistance(precision="float64")
    reference = distance(X_ref, y_ref, Xm, ym).value
    value = distance(X, y, Xm, ym).value
    assert reference > 0
    assert abs(float(value) - float(reference)) <= 1e-6 * max(1.0, abs(float(reference)))
