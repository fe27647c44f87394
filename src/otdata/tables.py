"""Results as tables: every task writes its rows as CSV (for code) and Markdown (for people).

The CSV keeps short column names; the Markdown can give them readable `headers` and carry `notes`
under the table (what each number is, the settings that produced it).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def columns_of(rows: list[dict]) -> list[str]:
    """Every key of `rows`, in order of first appearance."""
    return list(dict.fromkeys(k for row in rows for k in row))


def to_markdown(rows: list[dict], columns: list[str] | None = None,
                headers: Mapping[str, str] | None = None, notes: str | None = None) -> str:
    """A GitHub-flavoured Markdown table of `rows` (dicts sharing keys).

    `headers` renames columns in the header line; `notes` is Markdown text put under the table.
    """
    columns = columns or columns_of(rows)
    headers = headers or {}
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row.get(c, "")) for c in columns) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + notes.strip() + "\n"
    return text


def write_table(rows: list[dict], stem: str | Path, columns: list[str] | None = None,
                headers: Mapping[str, str] | None = None, notes: str | None = None,
                ) -> tuple[Path, Path]:
    """Write `rows` to `<stem>.csv` and `<stem>.md` (with `headers` and `notes`); return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    columns = columns or columns_of(rows)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(to_markdown(rows, columns, headers, notes))
    return csv_path, md_path


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a CSV written by `write_table`, with numbers parsed back (empty cells → None)."""
    with Path(path).open(newline="") as handle:
        return [{k: parse_value(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def parse_value(text: str | None):
    """`"3"` → 3, `"0.5"` → 0.5, `"True"` → True, `""` → None; anything else stays a string."""
    if text is None or text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
