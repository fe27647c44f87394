"""Shared fixtures: a tiny data root in the real formats, and the repository's config dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import write_all_images

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root holding tiny MNIST, KMNIST, FashionMNIST, EMNIST letters and USPS files."""
    return write_all_images(tmp_path_factory.mktemp("data"))
