"""The explorer's fixtures: a tiny data root (every *NIST dataset, 10-12 items per class, and a
folder of PNGs), and the config `otdata explore` composes for it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures import balanced_labels, class_images, compose_config, write_all_images, \
    write_image_folder


@pytest.fixture(scope="session")
def explore_root(tmp_path_factory):
    root = write_all_images(tmp_path_factory.mktemp("explore_data"))
    labels = balanced_labels(40, 4).astype(np.int64)
    write_image_folder(root / "my_digits", class_images(labels, 28, seed=3), labels, ["a", "b", "c", "d"])
    return root


def explore_config(root, tmp_path, *overrides):
    """`otdata explore paths.data_dir=<root> ...` as composed (no run folder needed)."""
    return compose_config(["task=explore", f"paths.data_dir={root}", f"paths.cache_dir={tmp_path / 'cache'}",
                           "task.per_class=6", *overrides])


def reference_otdd(root, cfg, per_class: int, seed: int = 0, degrees: float | None = None) -> float:
    """`DatasetDistance` (the run's `distance` config) on the items the page means: `per_class` of
    each class of USPS (rotated by `degrees`) and of MNIST, drawn with `seed`, built here from the
    datamodules and the transforms."""
    from otdata.data import MNISTDataModule, USPSDataModule
    from otdata.data.subsample import per_class_indices
    from otdata.instantiate import safe_instantiate

    turn = None if degrees is None else {"rotate": {"degrees": [degrees, degrees]}}
    items = []
    for dm in (USPSDataModule(root, transform=turn, seed=seed), MNISTDataModule(root, seed=seed)):
        X, y = dm.tensors("train")  # the whole split, transformed as the datamodule does it
        idx = per_class_indices(y, per_class, seed=seed)
        items += [X[idx].reshape(len(idx), -1), y[idx]]
    return safe_instantiate(cfg.distance)(*items).value


@pytest.fixture
def explorer(explore_root, tmp_path):
    from otdata.explore.callbacks import Explorer

    return Explorer(explore_config(explore_root, tmp_path))
