"""Re-run the reliability survey of docs/RELIABILITY.md and print its counts.

Usage: python benchmarks/reliability_survey.py [--collect-only] [--doc docs/RELIABILITY.md]

Every row of the document's tables (`| # | input | what the user gets | test |`) is one input (a
row numbered `70-74` is five), its outcome is the first words of its third column (`clear error`,
`clear warning`: a clear error; `handled`), and its fourth column names the tests that keep it so
(paths relative to `tests/`; `…[case]` is another case of the row's or the previous row's last
test, `::name` another test of its file, `same test` the previous row's tests, and `…` inside a
parametrised id stands for the rest of it).
The script collects the named tests with pytest, runs them (not with `--collect-only`) and prints,
per section, the inputs, clear errors and handled ones, and how many rows' tests all pass. The
document's `Totals` table is these counts (`tests/test_reliability_doc.py` checks that it is, and
that every named test exists).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "| # | input | what the user gets | test |"


@dataclass
class Row:
    """One row of the survey: its number(s), section, outcome and the tests it names."""

    number: str
    section: str
    outcome: str  # "clear error" | "handled"
    refs: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> int:
        first, _, last = self.number.partition("-")
        return int(last) - int(first) + 1 if last else 1


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _outcome(text: str, number: str) -> str:
    if text.startswith("handled"):
        return "handled"
    if text.startswith(("clear error", "clear warning")):
        return "clear error"
    raise ValueError(f"row {number}: its outcome must start with 'clear error', 'clear warning' or "
                     f"'handled', not {text[:40]!r}")


def _refs(cell: str, previous: list[str]) -> list[str]:
    """The test ids a row's test cell names, its continuations completed."""
    if cell.strip().startswith("same test"):
        return list(previous)
    refs, last = [], previous[-1] if previous else ""
    for token in re.findall(r"`([^`]+)`", cell):
        if token.startswith(("…[", "[")):  # another case of the last test
            token = last.split("[", 1)[0] + token.lstrip("…")
        elif token.startswith("::"):  # another test of the last file
            token = last.split("::", 1)[0] + token
        elif "::" not in token:
            continue
        refs.append(token)
        last = token
    return refs


def parse(doc: str) -> list[Row]:
    """Every row of the document's survey tables, in order; a row's section is its headings
    (`## Second survey: ### Crashes before ...`)."""
    rows, heads, in_table, previous = [], {}, False, []
    for line in doc.splitlines():
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            heads = {k: v for k, v in heads.items() if k < level} | {level: line.lstrip("#").strip()}
            section, in_table = ": ".join(v for k, v in sorted(heads.items()) if k > 1), False
        elif line.strip() == HEADER:
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            number, _, outcome, tests = _cells(line)[:4]
            row = Row(number, section, _outcome(outcome, number), _refs(tests, previous))
            rows.append(row)
            previous = row.refs or previous
        elif not line.startswith("|"):
            in_table = False
    return rows


def totals(rows: list[Row]) -> dict[str, dict[str, int]]:
    """Per section (in order) and for `all`: inputs, clear errors, handled."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        for key in (row.section, "all"):
            t = out.setdefault(key, {"inputs": 0, "clear error": 0, "handled": 0})
            t["inputs"] += row.inputs
            t[row.outcome] += row.inputs
    out["all"] = out.pop("all")
    return out


def collected(files: list[str]) -> list[str]:
    """The node ids pytest collects from `files` (paths relative to `tests/`)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly",
                          *[f"tests/{f}" for f in files]], capture_output=True, text=True, cwd=ROOT)
    return [line.removeprefix("tests/") for line in out.stdout.splitlines() if "::" in line]


def resolve(ref: str, ids: list[str]) -> list[str]:
    """The collected ids a reference stands for: itself, its parametrised cases, or (`…` in a
    parametrised id, `[overrides4…]`) every id that begins as it does up to the `…`."""
    if "…" in ref:
        return [i for i in ids if i.startswith(ref.split("…", 1)[0])]
    return [i for i in ids if i == ref or i.startswith(ref + "[")]


def run(ids: list[str]) -> dict[str, bool]:
    """Run the tests; whether each passed."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", f"--junitxml={report}",
                        *[f"tests/{i}" for i in ids]], cwd=ROOT)
        passed = {}
        for case in ET.parse(report).iter("testcase"):
            path = case.get("classname", "").replace(".", "/").removeprefix("tests/")
            node = f"{path}.py::{case.get('name')}"
            passed[node] = not any(child.tag in ("failure", "error", "skipped") for child in case)
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", default=str(ROOT / "docs" / "RELIABILITY.md"))
    parser.add_argument("--collect-only", action="store_true", help="check the named tests exist; run none")
    args = parser.parse_args()
    rows = parse(Path(args.doc).read_text())
    files = sorted({r.split("::")[0] for row in rows for r in row.refs})
    ids = collected(files)
    named = {ref: resolve(ref, ids) for row in rows for ref in row.refs}
    missing = [ref for ref, found in named.items() if not found]
    for ref in missing:
        print(f"not collected: {ref}")
    passed = {} if args.collect_only else run(sorted({i for found in named.values() for i in found}))
    print("| section | inputs | clear error | handled | rows passing |")
    print("|---|---|---|---|---|")
    for section, t in totals(rows).items():
        mine = [row for row in rows if section in (row.section, "all")]
        ok = sum(bool(row.refs) and all(passed.get(i, False) for ref in row.refs for i in named[ref])
                 for row in mine)
        shown = "not run" if args.collect_only else f"{ok} of {len(mine)}"
        print(f"| {section} | {t['inputs']} | {t['clear error']} | {t['handled']} | {shown} |")
    sys.exit(1 if missing or (passed and not all(passed.values())) else 0)


if __name__ == "__main__":
    main()
