"""notebooks/quickstart.ipynb runs top to bottom (on tiny generated data) and prints its table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import run_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_executes_on_tiny_data(data_root, monkeypatch, tmp_path):
    monkeypatch.setenv("OTDATA_DATA_DIR", str(data_root))
    monkeypatch.setenv("QUICKSTART_N", "100")
    monkeypatch.setenv("QUICKSTART_STEPS", "3")
    monkeypatch.setenv("QUICKSTART_EPOCHS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text, outputs = run_notebook(NOTEBOOK, tmp_path)
    assert "OTDD(USPS, MNIST) =" in text and "objective" in text
    table = text[text.index("| data |"):]
    accuracies = [float(line.rsplit("|", 2)[1]) for line in table.splitlines()[2:6]]
    assert len(accuracies) == 4 and all(0 <= a <= 100 for a in accuracies)
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) >= 3
