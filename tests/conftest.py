"""Shared fixtures: a tiny data root in the real formats, and the repository's config dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fixtures import write_all_images, write_user_data

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root holding tiny MNIST, KMNIST, FashionMNIST, EMNIST letters and USPS files."""
    return write_all_images(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def user_data_root(tmp_path_factory) -> Path:
    """A data root holding tiny files in every other `data` option's format: an image folder,
    arrays, Hugging Face datasets, CSVs, CIFAR-10/100, SVHN, STL-10 (see `write_user_data`)."""
    return write_user_data(tmp_path_factory.mktemp("user_data"))


@pytest.fixture
def one_thread():
    """Small problems on one thread: no oversubscription on shared machines, and the same float
    rounding run to run (resume and determinism tests compare bit for bit)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
