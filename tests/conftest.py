"""Shared fixtures: a tiny data root in the real formats, and the repository's config dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fixtures import write_all_images

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root holding tiny MNIST, KMNIST, FashionMNIST, EMNIST letters and USPS files."""
    return write_all_images(tmp_path_factory.mktemp("data"))


@pytest.fixture
def one_thread():
    """Small problems on one thread: no oversubscription on shared machines, and the same float
    rounding run to run (resume and determinism tests compare bit for bit)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
