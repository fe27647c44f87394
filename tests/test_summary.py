"""Sweeps end in one table: the Hydra callback gathers every job's rows with its overrides."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otdata.summary import over_seeds, summarize
from otdata.tables import write_table


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
