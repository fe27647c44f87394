"""The `otdata` command: help, single runs and a 2-job multirun sweep, as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


OTDATA = [sys.executable, "-m", "otdata.cli"]


def otdata(args: list[str], cwd: Path, data_root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OTDATA_DATA_DIR": str(data_root), "OTDATA_CACHE_DIR": str(cwd / "cache"),
           "MPLBACKEND": "Agg", "WANDB_MODE": "offline"}
    return subprocess.run(OTDATA + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_help_describes_every_config_group_in_one_line_with_its_options(tmp_path, data_root):
    """Every user-facing group of conf/ (not the internal schema/* and debug/task) is listed with a
    one-line description, and every option of it on the line below; the help fits a screen."""
    import re

    from otdata.config import CONFIG_DIR

    result = otdata(["--help"], tmp_path, data_root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    groups = {p.name: p for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name not in ("schema", "hydra")}
    groups["hydra/launcher"] = CONFIG_DIR / "hydra" / "launcher"
    for group, folder in groups.items():
        at = [i for i, line in enumerate(lines) if re.match(rf"^  {re.escape(group)} +\S.{{10,}}", line)]
        assert len(at) == 1, f"{group}: no one-line description in --help"
        listed = set(lines[at[0] + 1].replace(",", " ").split())
        assert {p.stem for p in folder.glob("*.yaml")} == listed, group
    assert "schema" not in result.stdout and "debug/task" not in result.stdout
    assert len(lines) < 60


def test_wrong_override_names_the_choices(tmp_path, data_root):
    result = otdata(["data@source=not_a_dataset"], tmp_path, data_root)
    assert result.returncode != 0
    assert "Could not find 'data/not_a_dataset'" in result.stderr
    assert "usps" in result.stderr  # Hydra lists the available options


def test_two_job_sweep_writes_one_result_per_job(tmp_path, data_root):
    args = ["-m", "task=distance", "distance=means", "task.n_source=60", "task.n_target=60",
            "data@source=usps,fashion_mnist", "hydra.sweep.dir=sweep"]
    result = otdata(args, tmp_path, data_root)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads((tmp_path / "sweep" / str(i) / "distance.json").read_text()) for i in (0, 1)]
    assert {r["source"] for r in records} == {"USPS", "FashionMNIST"}
    assert all(r["value"] > 0 and r["n_source"] == 60 for r in records)
    assert all((tmp_path / "sweep" / str(i) / "label_distances.png").stat().st_size > 0 for i in (0, 1))


def test_missing_data_is_a_clear_error(tmp_path):
    result = otdata(["task=distance", "data@source=kmnist"], tmp_path, tmp_path / "empty")
    assert result.returncode != 0
    assert "KMNIST: the train split is missing" in result.stderr
    assert "paths.data_dir" in result.stderr
