"""notebooks/your_own_data.ipynb runs top to bottom on tiny generated data (a folder of PNGs written
from the tiny USPS file) and prints its distance, flow and accuracy table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import run_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "your_own_data.ipynb"


@pytest.mark.slow
def test_your_own_data_notebook_executes_on_tiny_data(data_root, monkeypatch, tmp_path):
    monkeypatch.setenv("OTDATA_DATA_DIR", str(data_root))
    monkeypatch.setenv("YOUR_DATA_FOLDER", str(tmp_path / "my_digits"))
    monkeypatch.setenv("YOUR_DATA_N", "100")
    monkeypatch.setenv("YOUR_DATA_STEPS", "3")
    monkeypatch.setenv("YOUR_DATA_EPOCHS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text, outputs = run_notebook(NOTEBOOK, tmp_path)
    assert "my_digits: (24, 784), classes ['0', '1'," in text   # 30 PNGs, 20 % held out
    assert "OTDD(my_digits, MNIST) =" in text and "objective" in text
    assert len(list((tmp_path / "my_digits").rglob("*.png"))) == 30
    table = text[text.index("| data |"):]
    accuracies = [float(line.rsplit("|", 2)[1]) for line in table.splitlines()[2:6]]
    assert len(accuracies) == 4 and all(0 <= a <= 100 for a in accuracies)
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) >= 3
