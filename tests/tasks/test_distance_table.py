"""task=distance's table names each number and works with results that lack the newer keys."""

from __future__ import annotations

from otdata.tables import to_markdown
from otdata.tasks.distance import HEADERS, NOTES, label_distance_name, settings_note, table_row


def test_row_names_the_otdd_and_its_companions():
    record = {"value": 209.1, "entropic": 221.7, "divergence": 201.3, "epsilon": 2.75,
              "epsilon_relative": 0.01, "n_iter": 59, "converged": True, "marginal_error": 1e-4,
              "backend": "dense", "n1": 2000, "n2": 2000}
    settings = {"_target_": "otdata.distance.DatasetDistance", "label_distance": "means", "p": 2}
    row = table_row("USPS", "MNIST", record, settings, seconds=8.55)
    assert row["otdd"] == 209.1 and row["entropic_ot"] == 221.7 and row["sinkhorn_divergence"] == 201.3
    assert row["label_distance"] == "means" and row["iterations"] == 59 and row["converged"] is True
    md = to_markdown([row], headers=HEADERS, notes=NOTES + "\n\n" + settings_note(settings))
    assert "**OTDD** = transport cost ⟨π, C⟩" in md and "entropic OT_ε" in md
    assert "debiased Sinkhorn divergence" in md and "ε (relative)" in md
    assert "**OTDD** is the number to quote" in md
    assert "`label_distance=means`, `p=2`" in md and "_target_" not in md
    assert label_distance_name(settings) == "label distance $W_{2}^{2}$ between class means"


def test_row_from_an_older_result_leaves_the_new_columns_empty():
    row = table_row("USPS", "MNIST", {"value": 1.0, "entropic": 1.2, "divergence": None,
                                      "epsilon": 0.1, "n_iter": 10, "converged": False},
                     {"label_distance": "gaussian"}, seconds=1.0)
    assert row["otdd"] == 1.0 and row["epsilon_relative"] is None and row["marginal_error"] is None
    assert "|  |" in to_markdown([row])   # empty cells, not "None"
