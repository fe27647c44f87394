"""Mean ± std over seeds of `experiment=repurpose` run folders (each holding a `repurpose.csv`).

    python experiments/repurpose/summarize.py outputs/repurpose_record/seed*_*
    python experiments/repurpose/summarize.py --csv experiments/repurpose/repurpose.csv <folders>

A folder may hold any subset of the datasets (one process per dataset and seed is fine): rows are
grouped by dataset and flowed-sample size with :func:`otdata.summary.over_seeds` (the same grouping
as a `-m seed=0,1,2` sweep's `summary_seeds`), and the `seeds` column says how many rows a group
averages. Prints three Markdown tables (the paper's protocol, the correspondence protocol, the
costs), numbers rounded to two decimals. `--csv FILE` also writes the groups as one table: each
number's mean in its own column and its standard deviation in `<column>_std`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from otdata.summary import over_seeds
from otdata.tables import read_csv, write_table

IDENTITY = ["raw_identity", "flowed_identity", "out_of_sample_identity", "out_of_sample_knn_identity",
            "baseline_from_scratch"]
CORRESPONDENCE = ["raw_correspondence", "flowed_correspondence", "out_of_sample_correspondence",
                  "out_of_sample_knn_correspondence", "baseline_from_scratch_correspondence"]
COSTS = ["flow_seconds", "map_seconds", "baseline_seconds", "seconds", "peak_memory_gb"]


def cell(row: dict, column: str) -> str:
    value, std = row.get(column), row.get(f"{column}_std")
    if not isinstance(value, (int, float)):
        return ""
    return f"{value:.2f} ± {std:.2f}" if std is not None else f"{value:.2f}"


def table(groups: list[dict], columns: list[str]) -> str:
    lines = ["| dataset | n flowed | seeds | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 3) + "|"]
    for g in groups:
        cells = [cell(g, c) for c in columns]
        if any(cells):
            lines.append(f"| {g['dataset']} | {g['n_flow']} | {g['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="run folders, each with a repurpose.csv")
    parser.add_argument("--csv", help="also write the mean/std table to this .csv (and .md)")
    args = parser.parse_args()
    rows = [r for folder in args.folders for r in read_csv(Path(folder) / "repurpose.csv")
            if r.get("n_flow") is not None]  # source datasets (the target's row has no flow)
    groups = over_seeds(rows, ["n_flow"], ["repurpose"])
    print("\n\n".join(table(groups, columns) for columns in (IDENTITY, CORRESPONDENCE, COSTS)))
    if args.csv:
        rounded = [{k: round(v, 2) if isinstance(v, float) else v for k, v in g.items()} for g in groups]
        write_table(rounded, Path(args.csv).with_suffix(""))


if __name__ == "__main__":
    main()
