"""experiments/repurpose/summarize.py keeps the frozen classifier's own row (the target's, which has
no flow) at the head of the identity table, once, and leaves skipped datasets out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from otdata.tables import read_csv, write_table

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "repurpose" / "summarize.py"


def _run_folder(root: Path, name: str, usps: float, skipped: bool = False) -> Path:
    """A run folder's repurpose.csv as the task writes it: the target's row first."""
    rows = [{"dataset": "MNIST", "n_test": 10000, "raw_identity": 99.38, "paper_before": 99.5},
            {"dataset": "USPS", "n_flow": 2000, "n_test": 2000, "raw_identity": 82.0,
             "flowed_identity": usps, "raw_correspondence": 82.0, "flowed_correspondence": usps,
             "flow_seconds": 10.0}]
    if skipped:
        rows.append({"dataset": "KMNIST", "status": "skipped: data files missing (x)"})
    write_table(rows, root / name / "repurpose")
    return root / name


def test_target_row_heads_the_identity_table_once(tmp_path):
    folders = [_run_folder(tmp_path, f"seed{s}", usps, skipped=s == 1)
               for s, usps in enumerate((99.4, 99.6, 99.5))]
    out = tmp_path / "record" / "repurpose.csv"
    done = subprocess.run([sys.executable, str(SCRIPT), "--csv", str(out), *map(str, folders)],
                          capture_output=True, text=True, check=True)

    rows = read_csv(out)
    assert [r["dataset"] for r in rows] == ["MNIST", "USPS"]
    mnist, usps = rows
    assert mnist["raw_identity"] == 99.38 and mnist["n_test"] == 10000 and mnist["n_flow"] is None
    assert mnist["seeds"] == 1            # three identical copies of one classifier's row
    assert usps["seeds"] == 3 and usps["flowed_identity"] == 99.5
    assert "| MNIST |  | 1 | 99.38 |" in done.stdout
    correspondence = read_csv(tmp_path / "record" / "repurpose_correspondence.csv")
    assert [r["dataset"] for r in correspondence] == ["USPS"]   # the classifier's row is identity only
    assert "KMNIST" not in done.stdout
