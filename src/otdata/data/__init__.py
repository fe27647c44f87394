"""Datasets as LightningDataModules that also give `(X, y)` tensors for OT code, and `as_labeled`,
which turns whatever labeled data a user holds into those tensors.

Example:
    >>> from otdata.data import MNISTDataModule
    >>> dm = MNISTDataModule(data_dir="data", max_samples=2000, seed=0)
    >>> X, y = dm.tensors("train", flatten=True)   # (2000, 784) float32 in [0, 1], int64 labels

The names below are imported on first use (PEP 562), so `otdata.distance`, which reads its input
through `otdata.data.labeled`, does not pull in Lightning, torchvision or transformers.
"""

from __future__ import annotations

import importlib

#: public name -> the module that defines it
_EXPORTS = {
    "LabeledDataModule": "base",
    "TensorDataModule": "base",
    "DataFileError": "errors",
    "DataFormatError": "errors",
    "MNISTDataModule": "images",
    "KMNISTDataModule": "images",
    "FashionMNISTDataModule": "images",
    "EMNISTDataModule": "images",
    "USPSDataModule": "images",
    "as_labeled": "labeled",
    "LabeledData": "labeled",
    "stratified_indices": "subsample",
    "CIFAR10DataModule": "archives",
    "CIFAR100DataModule": "archives",
    "SVHNDataModule": "archives",
    "STL10DataModule": "archives",
    "ArraysDataModule": "arrays",
    "HFImageDataModule": "hf",
    "HFTextDataModule": "hf",
    "ImageFolderDataModule": "image_folder",
    "CSVTextDataModule": "text_csv",
    "TextCSVDataModule": "text",
    "AGNewsDataModule": "text",
    "DBPediaDataModule": "text",
    "YelpPolarityDataModule": "text",
    "YelpFullDataModule": "text",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'otdata.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"otdata.data.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
