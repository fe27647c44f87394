"""`otdata task=distance data@source=image_folder source.root=<folder> data@target=mnist` as a user
types it: the folder's OTDD equals the one computed in Python from the same tensors; a bad folder
ends the task with the reader's message alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from otdata.data import ImageFolderDataModule, MNISTDataModule
from otdata.distance import DatasetDistance
from tests.fixtures import balanced_labels, class_images, compose_config, write_image_folder
from tests.test_cli import otdata


def test_distance_from_a_user_folder(tmp_path, data_root):
    labels = balanced_labels(40, 10).astype(np.int64)
    folder = write_image_folder(tmp_path / "digits", class_images(labels, 16, seed=3), labels,
                                [str(d) for d in range(10)])
    args = ["task=distance", "data@source=image_folder", f"source.root={folder}", "source.image_size=28",
            "data@target=mnist", "task.n_source=null", "task.n_target=60", "hydra.run.dir=run"]
    result = otdata(args, tmp_path, data_root)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "distance.json").read_text())
    assert record["source"] == "digits" and record["target"] == "MNIST"

    X, y = ImageFolderDataModule(folder, image_size=28).tensors("train", flatten=True)
    Xm, ym = MNISTDataModule(data_root, max_samples=60).tensors("train", flatten=True)
    expected = DatasetDistance()(X, y, Xm, ym).value
    assert abs(record["value"] - expected) <= 1e-4 * abs(expected)



def test_a_bad_folder_ends_with_the_readers_message_alone(tmp_path, data_root):
    from otdata.cli import run_task

    (tmp_path / "empty").mkdir()
    cfg = compose_config(["task=distance", "data@source=image_folder", f"source.root={tmp_path / 'empty'}",
                          f"paths.data_dir={data_root}"], output_dir=tmp_path / "run")
    with pytest.raises(SystemExit) as stop:   # what the command prints, without a traceback
        run_task(cfg)
    assert str(stop.value).startswith("otdata: empty: ") and "no class sub-folders" in str(stop.value)
