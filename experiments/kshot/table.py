"""The k-shot table of `experiment=kshot` run folders, beside the published rows.

    python experiments/kshot/table.py <sweep folders or run folders> [--csv experiments/kshot/kshot.csv]

Every `kshot.csv` under the given folders is read (one per job: a target, a k, one or more seeds);
rows are grouped by (target, k, column) with :func:`otdata.summary.over_seeds` and each seed's
accuracy counts once (a job's `n_seeds` rows enter with their mean, so give one seed per job for an
exact standard deviation). Prints one Markdown table: a row per (target, k), a column per method
(mean ± std over seeds, the number of seeds in the last column), then the published numbers of
Bonet et al. (2025, Table 2), and one table of seconds per seed and column.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from otdata.summary import over_seeds
from otdata.tables import read_csv, write_table
from otdata.tasks.kshot import PUBLISHED

METHODS = ["target_only", "source", "finetune", "flow_otdd", "flow_mmd", "flow_sliced"]
PAPER = ["paper_target_only", "paper_wow_mmd_sw", "paper_otdd", "paper_hua"]


def gather(folders: list[Path]) -> list[dict]:
    """Every job's rows, tagged with the job folder (its seed set)."""
    rows = []
    for folder in folders:
        for path in sorted(folder.rglob("kshot.csv")):
            rows += [{**row, "job": str(path.parent)} for row in read_csv(path)]
    return rows


def cell(row: dict | None, column: str = "accuracy") -> str:
    if row is None or not isinstance(row.get(column), (int, float)):
        return "–"
    std = row.get(f"{column}_std")
    return f"{row[column]:.1f} ± {std:.1f}" if std is not None else f"{row[column]:.1f}"


def tables(rows: list[dict]) -> tuple[str, str, list[dict]]:
    """The accuracy table, the seconds table and the flat groups (for `--csv`)."""
    for row in rows:
        row["seed"] = row["job"]  # over_seeds groups by everything but the seed
    groups = over_seeds(rows, ["seed", "target", "shots"], ["kshot"])
    by = {(g["target"], g["shots"], g["method"]): g for g in groups}
    cells = sorted({(g["target"], g["shots"]) for g in groups})
    present = list(dict.fromkeys(g["method"] for g in groups))
    methods = [m for m in METHODS if m in present] + [m for m in present if m not in METHODS]
    head = ["task", "k", *methods, "seeds", *PAPER]
    accuracy = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    seconds = ["| task | k | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
    for target, shots in cells:
        mine = [by.get((target, shots, m)) for m in methods]
        paper = PUBLISHED.get((target, shots)) or (None,) * 4
        n = max(g["seeds"] for g in mine if g)
        accuracy.append(f"| MNIST→{target} | {shots} | " + " | ".join(cell(g) for g in mine)
                        + f" | {n} | " + " | ".join("–" if p is None else f"{p}" for p in paper) + " |")
        seconds.append(f"| MNIST→{target} | {shots} | " + " | ".join(cell(g, "seconds") for g in mine) + " |")
    return "\n".join(accuracy) + "\n", "\n".join(seconds) + "\n", groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--csv", type=Path, help="also write the groups (mean and _std columns) here")
    args = parser.parse_args()
    accuracy, seconds, groups = tables(gather(args.folders))
    print(accuracy)
    print(seconds)
    if args.csv:
        write_table([{k: v for k, v in g.items() if k not in ("job", "n_seeds")} for g in groups],
                    args.csv.with_suffix(""))


if __name__ == "__main__":
    main()
