"""Mean ± std over seeds of `experiment=repurpose` run folders (each holding a `repurpose.csv`).

    python experiments/repurpose/summarize.py outputs/repurpose_record/seed*_*
    python experiments/repurpose/summarize.py --csv experiments/repurpose/repurpose.csv <folders>

A folder may hold any subset of the datasets (one process per dataset and seed is fine): rows are
grouped by dataset and flowed-sample size with :func:`otdata.summary.over_seeds` (the same grouping
as a `-m seed=0,1,2` sweep's `summary_seeds`), and the `seeds` column says how many rows a group
averages. The target's row (the frozen classifier's own test accuracy, which every run folder
repeats and which has no flow) heads the identity protocol's table; identical copies of it count once,
so its `seeds` is the number of distinct classifiers. Prints three Markdown tables (the paper's
protocol, the correspondence protocol, the costs), numbers rounded to two decimals. `--csv FILE`
also writes the groups as tables (one per protocol): each number's mean in its own column and its
standard deviation in `<column>_std`.
"""

from __future__ import annotations

import argparse
import sys
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
            n_flow = "" if g.get("n_flow") is None else g["n_flow"]
            lines.append(f"| {g['dataset']} | {n_flow} | {g['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def other_protocol(column: str, protocol: str) -> bool:
    """Whether a column (or its `_std`) belongs to the protocol that is not `protocol`."""
    name = column.removesuffix("_std")
    if protocol == "identity":
        return name.endswith("_correspondence")
    return name.endswith("_identity") or name == "baseline_from_scratch"


def protocol_groups(rows: list[dict], columns: list[str]) -> list[dict]:
    """`over_seeds` groups of the rows that have any of `columns` (a protocol may have been run for
    fewer seeds than the other), so each group's `seeds` counts what its numbers average. The
    target's rows (no `n_flow`) come first, each distinct one once."""
    rows = [r for r in rows if any(r.get(c) is not None for c in columns)]
    targets = [r for r in rows if r.get("n_flow") is None]
    distinct = list({tuple(sorted((k, v) for k, v in r.items() if v is not None)): r
                     for r in targets}.values())  # empty columns differ between folders
    sources = [r for r in rows if r.get("n_flow") is not None]
    return over_seeds(distinct, ["n_flow"], ["repurpose"]) + over_seeds(sources, ["n_flow"], ["repurpose"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="run folders, each with a repurpose.csv")
    parser.add_argument("--csv", help="also write the groups to this .csv (and .md), and those of the "
                                      "correspondence protocol to <name>_correspondence.csv")
    args = parser.parse_args()
    missing = [f for f in args.folders if not (Path(f) / "repurpose.csv").is_file()]
    if missing:
        sys.exit(f"No repurpose.csv in {', '.join(missing)}: is the run still going, or did it stop "
                 "before its first dataset? Leave those folders out.")
    rows = [r for folder in args.folders for r in read_csv(Path(folder) / "repurpose.csv")
            if r.get("status") is None]  # a skipped dataset's row holds no number
    print("\n\n".join(table(protocol_groups(rows, columns), columns)
                       for columns in (IDENTITY, CORRESPONDENCE, COSTS)))
    if args.csv:
        stem = Path(args.csv).with_suffix("")
        for protocol, columns in (("identity", IDENTITY), ("correspondence", CORRESPONDENCE)):
            groups = protocol_groups(rows, columns)
            sources_first = [g for g in groups if g.get("n_flow") is not None] + groups
            keep = [k for k in dict.fromkeys(k for g in sources_first for k in g)
                    if not other_protocol(k, protocol)]
            path = stem if protocol == "identity" else stem.with_name(f"{stem.name}_correspondence")
            write_table([{k: round(v, 2) if isinstance(v, float) else v for k, v in g.items()}
                         for g in groups], path, columns=keep)


if __name__ == "__main__":
    main()
