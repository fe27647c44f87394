"""experiment=transferability_augment: sources made of one dataset under transforms, toward one
target, through the transferability task's gain and statistics."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import open_dict

from otdata.data import USPSDataModule
from otdata.tasks.transfer_data import Loader
from otdata.tasks.transferability import resolve_pairs, run
from tests.fixtures import compose_config, write_mnist_like, write_usps
from tests.tasks.test_transferability import FAST

SETTINGS = "task.augmentations={none: none, rot90: {rotate: {degrees: [90, 90]}}, flip: {flip: {p: 1.0}}}"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("augment")
    write_mnist_like(root, "MNIST")
    write_usps(root)
    return root


def compose(root, tmp_path, *overrides):
    cfg = compose_config(["experiment=transferability_augment", f"paths.data_dir={root}",
                          "task.augment_source=usps", "task.target=mnist", *FAST, *overrides], tmp_path)
    with open_dict(cfg):  # a dict given on the command line merges into the 15 settings: replace them
        cfg.task.augmentations = {"none": "none", "rot90": {"rotate": {"degrees": [90, 90]}},
                                  "flip": {"flip": {"p": 1.0}}}
    return cfg


def test_the_default_experiment_has_at_least_twelve_settings_toward_usps(tmp_path):
    cfg = compose_config(["experiment=transferability_augment"], tmp_path)
    pairs = resolve_pairs(cfg.task)
    assert len(pairs) >= 12 and {t for _, t in pairs} == {"usps"}
    assert cfg.task.augment_source == "mnist"
    assert set(cfg.task.compare) == {"exact", "sliced"} and "gaussian" in cfg.distance.label_distance


def test_pairs_augmentations_needs_settings_and_a_target(tmp_path):
    cfg = compose_config(["experiment=transferability_augment"], tmp_path)
    with open_dict(cfg):
        cfg.task.target = None
    with pytest.raises(ValueError, match="task.target"):
        resolve_pairs(cfg.task)


def test_each_setting_is_the_source_under_its_transform(root, tmp_path):
    cfg = compose(root, tmp_path)
    load = Loader(cfg)
    plain, turned = load("none"), load("rot90")
    assert (plain.name, turned.name) == ("USPS+none", "USPS+rot90")
    torch.testing.assert_close(turned.y, plain.y)
    side = int(plain.X.shape[1] ** 0.5)
    expected = torch.rot90(plain.X.reshape(-1, 1, side, side), 1, dims=(-2, -1)).reshape(len(plain.y), -1)
    torch.testing.assert_close(turned.X, expected)
    reference = USPSDataModule(data_dir=root, image_size=28, seed=cfg.seed).tensors("test", max_samples=cfg.task.n_test, flatten=True)[0]
    torch.testing.assert_close(plain.X_test, reference)
    assert "rotate" in turned.origin and "rotate" not in plain.origin


def test_a_run_computes_only_the_pairs_toward_the_target_and_correlates_over_settings(root, tmp_path):
    result = run(compose(root, tmp_path))
    rows = result["rows"]
    assert [r["pair"] for r in rows] == ["USPS+none→MNIST", "USPS+rot90→MNIST", "USPS+flip→MNIST"]
    assert all(r["status"] == "ok" for r in rows)
    assert len({r["otdd"] for r in rows}) == 3  # each transform moves the distance
    record = json.loads((tmp_path / "transferability.json").read_text())
    timings = record["timings"]["otdd"]
    assert timings["pairs"] == 3  # not the 6 pairs among the four datasets
    assert record["correlation"]["n"] == 3
    assert {s["distance"] for s in record["statistics"]} == {"otdd", "exact", "sliced"}
    assert "transform=" in record["datasets"]["rot90"]
