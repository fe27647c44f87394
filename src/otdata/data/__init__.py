"""Datasets as LightningDataModules that also give `(X, y)` tensors for OT code.

Example:
    >>> from otdata.data import MNISTDataModule
    >>> dm = MNISTDataModule(data_dir="data", max_samples=2000, seed=0)
    >>> X, y = dm.tensors("train", flatten=True)   # (2000, 784) float32 in [0, 1], int64 labels
"""

from otdata.data.base import LabeledDataModule
from otdata.data.errors import DataFileError
from otdata.data.images import (
    EMNISTDataModule,
    FashionMNISTDataModule,
    KMNISTDataModule,
    MNISTDataModule,
    USPSDataModule,
)
from otdata.data.labeled import LabeledData, as_labeled
from otdata.data.subsample import stratified_indices
from otdata.data.archives import CIFAR10DataModule, CIFAR100DataModule, STL10DataModule, SVHNDataModule
from otdata.data.arrays import ArraysDataModule
from otdata.data.errors import DataFormatError
from otdata.data.hf import HFImageDataModule, HFTextDataModule
from otdata.data.image_folder import ImageFolderDataModule
from otdata.data.text_csv import CSVTextDataModule
from otdata.data.text import (
    AGNewsDataModule,
    DBPediaDataModule,
    TextCSVDataModule,
    YelpFullDataModule,
    YelpPolarityDataModule,
)

__all__ = [
    "LabeledDataModule",
    "DataFileError",
    "MNISTDataModule",
    "KMNISTDataModule",
    "FashionMNISTDataModule",
    "EMNISTDataModule",
    "USPSDataModule",
    "TextCSVDataModule",
    "AGNewsDataModule",
    "DBPediaDataModule",
    "YelpPolarityDataModule",
    "YelpFullDataModule",
    "stratified_indices",
    "as_labeled",
    "LabeledData",
    "DataFormatError",
    "ImageFolderDataModule",
    "ArraysDataModule",
    "HFImageDataModule",
    "HFTextDataModule",
    "CSVTextDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "SVHNDataModule",
    "STL10DataModule",
]
