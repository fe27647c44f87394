"""The `otdata` command on bad input: a missing data file prints the message alone (exit code != 0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def otdata(args: list[str], cwd: Path, data_root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OTDATA_DATA_DIR": str(data_root), "OTDATA_CACHE_DIR": str(cwd / "cache"),
           "MPLBACKEND": "Agg", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "otdata.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_missing_data_file_prints_the_message_alone(tmp_path):
    result = otdata(["task=distance", "data@source=kmnist", "paths.data_dir=empty"], tmp_path,
                    tmp_path / "unused")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
    assert "KMNIST: the train split is missing" in result.stderr
    expected = str((tmp_path / "empty" / "KMNIST" / "raw" / "train-images-idx3-ubyte").resolve())
    assert f"  - {expected}" in result.stderr  # absolute, though the data root was relative
    assert len(result.stderr.strip().splitlines()) < 15
