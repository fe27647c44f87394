"""Mean ± std over seeds of `experiment=repurpose` run folders (each holding a `repurpose.csv`).

    python experiments/repurpose/summarize.py outputs/repurpose_record/seed0 outputs/repurpose_record/seed1 ...

Prints two Markdown tables (the paper's protocol, then the correspondence protocol); numbers are
rounded to two decimals, and a cell lists how many seeds it averages when not all have it.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from otdata.tables import read_csv

IDENTITY = ["raw_identity", "flowed_identity", "out_of_sample_identity", "out_of_sample_knn_identity",
            "baseline_from_scratch"]
CORRESPONDENCE = ["raw_correspondence", "flowed_correspondence", "out_of_sample_correspondence",
                  "out_of_sample_knn_correspondence", "baseline_from_scratch_correspondence"]


def cell(values: list[float], seeds: int) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    text = f"{mean:.2f} ± {std:.2f}" if len(values) > 1 else f"{mean:.2f}"
    return text if len(values) == seeds else f"{text} ({len(values)} seeds)"


def table(runs: list[list[dict]], columns: list[str]) -> str:
    datasets = list(dict.fromkeys(r["dataset"] for rows in runs for r in rows[1:]))
    lines = ["| dataset | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in datasets:
        per_column = [[r[c] for rows in runs for r in rows if r["dataset"] == name
                       and isinstance(r.get(c), (int, float))] for c in columns]
        lines.append(f"| {name} | " + " | ".join(cell(v, len(runs)) for v in per_column) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    runs = [read_csv(Path(folder) / "repurpose.csv") for folder in sys.argv[1:]]
    print(f"{len(runs)} seed(s)\n\n{table(runs, IDENTITY)}\n\n{table(runs, CORRESPONDENCE)}")
