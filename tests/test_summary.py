"""Sweeps end in one table: the Hydra callback gathers every job's rows with its overrides."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otdata.summary import over_seeds, read_status, summarize, write_status
from otdata.tables import write_table
from tests.fixtures import write_mnist_like, write_usps


def _job(sweep: Path, n: int, overrides: list[str], task: str, rows: list[dict]) -> None:
    folder = sweep / str(n)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / ".hydra" / "config.yaml").write_text(f"task:\n  name: {task}\n")
    write_table(rows, folder / task)


def test_seeds_are_averaged_per_dataset_with_their_spread(tmp_path):
    accuracies = {0: (99.4, 71.0), 1: (99.5, 72.0), 2: (99.6, 70.0)}
    for seed, (usps, fashion) in accuracies.items():
        _job(tmp_path, seed, ["experiment=repurpose", f"seed={seed}"], "repurpose", [
            {"dataset": "USPS", "flowed_identity": usps, "n_flow": 2000, "correspondence": "0→0"},
            {"dataset": "FashionMNIST", "flowed_identity": fashion, "n_flow": 2000,
             "correspondence": f"0→{seed}"},
        ])
    written = summarize(tmp_path)

    rows = list(csv.DictReader(open(written["summary"])))
    assert len(rows) == 6 and rows[0]["seed"] == "0" and rows[0]["job"] == "0"
    by_dataset = {r["dataset"]: r for r in csv.DictReader(open(written["summary_seeds"]))}
    assert set(by_dataset) == {"USPS", "FashionMNIST"}
    assert float(by_dataset["USPS"]["flowed_identity"]) == pytest.approx(99.5)
    assert float(by_dataset["USPS"]["flowed_identity_std"]) == pytest.approx(0.1)
    assert by_dataset["USPS"]["seeds"] == "3"
    assert by_dataset["USPS"]["correspondence"] == "0→0"          # the same in every seed
    assert by_dataset["FashionMNIST"]["correspondence"] == "3 values"
    md = (tmp_path / "summary_seeds.md").read_text()
    assert "99.5 ± 0.1" in md and "71 ± 1" in md and "2000 ±" not in md  # constants shown plainly
    assert "Same in every job: `experiment=repurpose`" in md


def test_over_seeds_keeps_other_swept_settings_apart():
    rows = [{"job": str(i), "seed": str(s), "distance": d, "source": "USPS", "otdd": v}
            for i, (s, d, v) in enumerate([(0, "means", 1.0), (1, "means", 3.0),
                                           (0, "gaussian", 10.0), (1, "gaussian", 14.0)])]
    out = {r["distance"]: r for r in over_seeds(rows, ["seed", "distance"], ["distance"])}
    assert out["means"]["otdd"] == 2.0 and out["gaussian"]["otdd"] == 12.0
    assert out["gaussian"]["otdd_std"] == pytest.approx(2 ** 1.5)


def test_a_job_without_its_table_is_reported_not_dropped(tmp_path):
    _job(tmp_path, 0, ["task=distance", "distance=means"], "distance", [{"source": "USPS", "otdd": 1.5}])
    (tmp_path / "1" / ".hydra").mkdir(parents=True)
    (tmp_path / "1" / ".hydra" / "overrides.yaml").write_text("- task=distance\n- distance=gaussian\n")
    (tmp_path / "1" / ".hydra" / "config.yaml").write_text("task:\n  name: distance\n")
    rows = list(csv.DictReader(open(summarize(tmp_path)["summary"])))
    assert [r["distance"] for r in rows] == ["means", "gaussian"]
    assert "distance.csv missing" in rows[1]["status"]


@pytest.mark.slow
def test_a_two_by_two_sweep_prints_and_writes_one_table(tmp_path, data_root):
    env = {**os.environ, "OTDATA_DATA_DIR": str(data_root), "OTDATA_CACHE_DIR": str(tmp_path / "cache"),
           "MPLBACKEND": "Agg", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    args = ["-m", "task=distance", "data@source=usps,fashion_mnist", "distance=gaussian,means",
            "task.n_source=40", "task.n_target=40", "hydra.sweep.dir=sweep"]
    result = subprocess.run([sys.executable, "-m", "otdata.cli", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    rows = list(csv.DictReader(open(tmp_path / "sweep" / "summary.csv")))
    assert len(rows) == 4
    assert list(rows[0])[:3] == ["job", "data@source", "distance"]  # the overrides come first
    assert {(r["data@source"], r["distance"]) for r in rows} == {
        (s, d) for s in ("usps", "fashion_mnist") for d in ("gaussian", "means")}
    assert {(r["source"], r["label_distance"]) for r in rows} == {
        (s, d) for s in ("USPS", "FashionMNIST") for d in ("gaussian", "means")}
    assert all(float(r["otdd"]) > 0 for r in rows)
    assert not (tmp_path / "sweep" / "summary_seeds.csv").exists()  # no seeds swept
    md = (tmp_path / "sweep" / "summary.md").read_text()
    assert sum(line.startswith("| ") for line in md.splitlines()) == 1 + 4 and "Same in every job: `task=distance`" in md
    job = (tmp_path / "sweep" / "1" / "distance.md").read_text()   # each run's table says what it is
    assert "**OTDD** = transport cost ⟨π, C⟩" in job and "debiased Sinkhorn divergence" in job
    assert "`label_distance=means`" in job and "Command: `otdata task=distance" in job
    printed = result.stdout[result.stdout.index("summary ("):]
    assert printed.count("| fashion_mnist |") == 2 and printed.count("| usps |") == 2


def test_failed_and_dead_jobs_have_a_status_and_their_error_last(tmp_path):
    _job(tmp_path, 0, ["task=distance", "distance=means"], "distance", [{"source": "USPS", "otdd": 1.5}])
    (tmp_path / "1" / ".hydra").mkdir(parents=True)
    (tmp_path / "1" / ".hydra" / "overrides.yaml").write_text("- task=distance\n- distance=gaussian\n")
    (tmp_path / "1" / ".hydra" / "config.yaml").write_text("task:\n  name: distance\n")
    write_status(tmp_path / "1", "failed", "ValueError: split must be one of ('train', 'test')")
    write_status(tmp_path / "2", "cancelled", "SLURM ended it as CANCELLED without a result",
                 ["task=distance", "distance=exact"])          # died before Hydra made its folder
    rows = list(csv.DictReader(open(summarize(tmp_path)["summary"])))
    assert [(r["distance"], r["status"]) for r in rows] == [
        ("means", "ok"), ("gaussian", "failed"), ("exact", "cancelled")]
    assert list(rows[0])[-1] == "error" and rows[0]["error"] == ""
    assert rows[1]["error"].startswith("ValueError: split must be") and rows[0]["otdd"] == "1.5"
    assert read_status(tmp_path / "2")["overrides"] == ["task=distance", "distance=exact"]


def test_otdata_summarize_rebuilds_the_tables_of_a_sweep_folder(tmp_path):
    _job(tmp_path / "sweep", 0, ["task=distance", "seed=0"], "distance", [{"source": "USPS", "otdd": 1.0}])
    _job(tmp_path / "sweep", 1, ["task=distance", "seed=1"], "distance", [{"source": "USPS", "otdd": 3.0}])
    command = [sys.executable, "-m", "otdata.cli", "summarize"]
    done = subprocess.run([*command, "sweep"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| USPS |  | 2 | ok | 2 ± 1.4 |" in (tmp_path / "sweep" / "summary_seeds.md").read_text()
    assert "summary (sweep/summary.md)" in done.stdout
    missing = subprocess.run([*command, "nowhere"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 1 and "usage: otdata summarize <sweep folder>" in missing.stderr
    assert "'nowhere' is not a folder" in missing.stderr


@pytest.mark.slow
def test_a_sweep_with_a_failed_job_still_writes_its_summary(tmp_path):
    write_usps(tmp_path / "data")
    write_mnist_like(tmp_path / "data", "MNIST")                  # no KMNIST: that job fails
    env = {**os.environ, "OTDATA_DATA_DIR": str(tmp_path / "data"), "MPLBACKEND": "Agg",
           "OTDATA_CACHE_DIR": str(tmp_path / "cache"), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    args = ["-m", "task=distance", "data@source=usps,kmnist", "task.n_source=40", "task.n_target=40",
            "hydra.sweep.dir=sweep"]
    result = subprocess.run([sys.executable, "-m", "otdata.cli", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "KMNIST: the train split is missing" in result.stderr
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "summary.csv")))
    assert [(r["data@source"], r["status"]) for r in rows] == [("usps", "ok"), ("kmnist", "failed")]
    assert float(rows[0]["otdd"]) > 0 and rows[1]["error"].startswith("DataFileError: KMNIST")
    assert "| kmnist | failed |" in result.stdout
