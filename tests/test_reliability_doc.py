"""docs/RELIABILITY.md stays re-runnable: its Totals table is the count of its rows, and every test
a row names exists (`benchmarks/reliability_survey.py` parses the document and runs them)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "RELIABILITY.md").read_text()


@pytest.fixture(scope="module")
def survey():
    spec = importlib.util.spec_from_file_location("reliability_survey",
                                                  ROOT / "benchmarks" / "reliability_survey.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _totals_table() -> list[tuple[int, int, int]]:
    table = DOC[DOC.index("## Totals"):]
    return [tuple(int(n) for n in numbers) for numbers in
            re.findall(r"^\| [^|]+ \| \**(\d+)\** \| \**(\d+)\** \| \**(\d+)\** \|$", table, re.M)]


def test_the_totals_table_counts_the_rows(survey):
    counted = [(t["inputs"], t["clear error"], t["handled"]) for t in survey.totals(survey.parse(DOC)).values()]
    assert _totals_table() == counted


def test_every_row_names_a_test_that_exists(survey):
    rows = survey.parse(DOC)
    assert all(row.refs for row in rows), [row.number for row in rows if not row.refs]
    ids = survey.collected(sorted({ref.split("::")[0] for row in rows for ref in row.refs}))
    missing = [ref for row in rows for ref in row.refs if not survey.resolve(ref, ids)]
    assert not missing
