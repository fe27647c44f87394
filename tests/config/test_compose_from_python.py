"""Composing `conf/` from Python, as a notebook does, in a fresh interpreter that never imported
otdata: Hydra finds `hydra_plugins.otdata_setup`, which registers the task schemas and resolvers."""

from __future__ import annotations

import json
import subprocess
import sys

from otdata.config import CONFIG_DIR

SCRIPT = f"""
import json
from hydra import compose, initialize_config_dir
with initialize_config_dir(config_dir={str(CONFIG_DIR)!r}, version_base="1.3"):
    cfg = compose("config", overrides=["task=distance", "task.n_source=7"])
print(json.dumps({{"task": dict(cfg.task), "cache": cfg.paths.cache_dir}}))
"""


def test_compose_works_without_importing_otdata_first(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["task"]["name"] == "distance" and got["task"]["n_source"] == 7
    assert got["cache"]  # `${otdata.user_cache_dir:}` resolved


def test_the_schema_still_types_the_task_keys(tmp_path):
    bad = SCRIPT.replace("task.n_source=7", "task.n_source=abc")
    out = subprocess.run([sys.executable, "-c", bad], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode != 0 and "n_source" in out.stderr
