"""What a notebook shows: results as a few lines and an HTML table, plots as returned Figures (saved
only when given a path), the coupling figures, and the README's Python section run as written."""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from otdata import plots
from otdata.distance import DatasetDistance, SlicedDatasetDistance
from otdata.flows import DatasetFlow
from otdata.ot import ConvergenceWarning

README = Path(__file__).resolve().parents[1] / "README.md"


def blobs(n: int, d: int, shift: float, seed: int):
    """`n` items in 3 classes whose means are far apart (labels 0, 1, 2 in turn)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    return torch.randn(n, d, generator=g) * 0.3 + 3.0 * y[:, None] + shift, y


def table_cells(html: str) -> dict[str, str]:
    """The `<th>` -> `<td>` pairs of a result's `_repr_html_` (parsed, so it must be well formed)."""
    root = ET.fromstring(html)
    assert root.tag == "table"
    return {tr.find("th").text: tr.find("td").text for tr in root.iter("tr")}


@pytest.fixture(scope="module")
def pair():
    return blobs(30, 4, 0.0, 0), blobs(24, 4, 0.5, 1)


def test_distance_result_repr_is_short_and_the_table_holds_the_value(pair):
    (X1, y1), (X2, y2) = pair
    res = DatasetDistance()(X1, y1, X2, y2)
    text = repr(res)
    assert len(text) < 700 and len(text.splitlines()) <= 8          # was every field, tensors included
    assert f"{res.value:.6g}" in text and f"{res.epsilon:.4g}" in text and "30 × 24 items" in text
    cells = table_cells(res._repr_html_())
    assert cells["value"].startswith(f"{res.value:.6g} ")
    assert cells["converged"].startswith("yes") and cells["sizes"].startswith("30 × 24 items, 3 × 3")


def test_an_unconverged_distance_says_so_in_red(pair):
    (X1, y1), (X2, y2) = pair
    with pytest.warns(ConvergenceWarning):
        res = DatasetDistance(epsilon=1e-4, max_iter=2, tol=1e-12)(X1, y1, X2, y2)
    assert not res.converged
    assert "converged   NO:" in repr(res)
    root = ET.fromstring(res._repr_html_())
    row = next(tr for tr in root.iter("tr") if tr.find("th").text == "converged")
    assert "color:#c00" in row.find("td").get("style")


def test_sliced_result_shows_value_with_its_monte_carlo_error(pair):
    (X1, y1), (X2, y2) = pair
    res = SlicedDatasetDistance(n_projections=20)(X1, y1, X2, y2)
    text = repr(res)
    assert text.startswith("SlicedDistanceResult:") and len(text) < 700
    assert f"{res.value:.6g} ± {res.std_error:.2g}" in text and "20 slices" in text
    assert table_cells(res._repr_html_())["value"].startswith(f"{res.value:.6g}")


def test_flow_result_repr_is_short_and_the_table_holds_the_objective(pair):
    (X1, y1), (X2, y2) = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = DatasetFlow(target=(X2, y2), steps=2, progress=False).run(X1, y1)
    text = repr(result)
    assert len(text) < 700 and len(text.splitlines()) <= 8
    start, end = result.history[0]["objective"], result.objective
    assert f"{start:.6g} → {end:.6g}" in text and "2 of 2" in text and "30 × 4 features" in text
    cells = table_cells(result._repr_html_())
    assert cells["objective"].startswith(f"{start:.6g} → {end:.6g}")


def every_plot(path_of, tmp_path):
    """Each `otdata.plots` figure on tiny data, `path_of(name)` as its path."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(12, 16, generator=g), torch.arange(12) % 3
    P = torch.rand(12, 12, generator=g)
    rows = [{"status": "ok", "pair": f"p{i}", "otdd": float(i), "gain": float(i)} for i in range(3)]
    stats = [{"distance": "otdd", "outcome": "gain", "pearson_r": 1.0, "spearman_rho": 1.0, "n": 3}]
    transfer = plots.transfer_figures(rows, stats, None if path_of("t") is None else tmp_path, "gain")
    return [plots.label_distance_heatmap(torch.rand(3, 3), "abc", "xyz", path_of("heat")),
            plots.correspondence_grid(X, X, torch.zeros(12, 2, dtype=torch.long), path_of("grid")),
            plots.image_rows({"a": X}, path_of("rows"), per_row=4),
            plots.labeled_scatter([1, 2], [3, 4], ["a", "b"], path_of("scatter")),
            plots.coupling_matrix(P, y, y, path=path_of("coupling")),
            plots.samples_and_coupling(X, y, X, y, P, n_lines=5, path=path_of("samples")),
            *transfer.values()]


def test_plots_return_figures_and_write_only_when_given_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    figures = every_plot(lambda name: None, tmp_path)
    assert len(figures) == 7 and all(isinstance(f, Figure) for f in figures)
    assert not list(tmp_path.rglob("*"))                             # path=None: nothing written
    every_plot(lambda name: tmp_path / "out" / f"{name}.png", tmp_path)
    written = sorted(p.name for p in tmp_path.rglob("*.png"))
    assert written == sorted([f"{n}.png" for n in ("heat", "grid", "rows", "scatter", "coupling",
                                                    "samples")] + ["scatter.png"])
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in tmp_path.rglob("*.png"))


def test_coupling_matrix_image_is_the_coupling_sorted_by_class():
    P = torch.arange(35, dtype=torch.float64).reshape(7, 5) + 1
    ys, yt = [2, 0, 1, 0, 2, 1, 0], [1, 0, 1, 0, 2]
    fig = plots.coupling_matrix(P, ys, yt, ["zero", "one", "two"], ["A", "B", "C"])
    rows = [i for c in (0, 1, 2) for i in range(7) if ys[i] == c]   # items in class order
    cols = [j for c in (0, 1, 2) for j in range(5) if yt[j] == c]
    ax = fig.axes[0]
    assert np.array_equal(np.asarray(ax.images[0].get_array()), P.numpy()[rows][:, cols])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["zero", "one", "two"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]
    boundaries = sorted(line.get_xydata()[0, 1] for line in ax.lines if line.get_xydata()[0, 0] == 0
                        and line.get_xydata()[1, 0] == 1)            # horizontal class boundaries
    assert boundaries == [2.5, 4.5]                                   # after 3 zeros, 2 ones


def test_coupling_matrix_title_gives_the_mass_kept_within_classes():
    P = torch.tensor([[3.0, 1.0], [0.0, 4.0]])                        # 7 of 8 on the diagonal
    fig = plots.coupling_matrix(P, [0, 1], [0, 1])
    assert "87.5 % of the mass stays within a class" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="source and 3 target labels"):
        plots.coupling_matrix(P, [0, 1], [0, 1, 1])


def test_samples_and_coupling_draws_the_requested_pairs_to_the_largest_entries():
    g = torch.Generator().manual_seed(1)
    (Xs, ys), (Xt, yt) = blobs(15, 6, 0.0, 2), blobs(12, 6, 1.0, 3)
    P = torch.rand(15, 12, generator=g)
    fig = plots.samples_and_coupling(Xs, ys, Xt, yt, P, n_lines=7, seed=3)
    ax = fig.axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_gid() == "coupled pairs"]
    assert len(lines) == 1 and len(lines[0].get_segments()) == 7
    source, target = (np.asarray(c.get_offsets()) for c in ax.collections[1:3])
    for start, end in lines[0].get_segments():                        # each from a source item ...
        i = int(np.argmin(np.abs(source - start).sum(1)))
        j = int(np.argmin(np.abs(target - end).sum(1)))
        assert np.allclose(source[i], start) and np.allclose(target[j], end)
        assert j == int(P[i].argmax())                                # ... to its largest entry
    with pytest.raises(ValueError, match="n_lines=16"):
        plots.samples_and_coupling(Xs, ys, Xt, yt, P, n_lines=16)


def test_readme_python_section_runs_as_written(data_root, tmp_path, monkeypatch, capsys):
    section = README.read_text().split("## From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 15
    monkeypatch.setenv("OTDATA_DATA_DIR", str(data_root))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert f"{namespace['res'].value:.6g}" in out and "FlowResult:" in out
    assert {p.name for p in tmp_path.glob("*.png")} == {"matrix.png", "coupling.png", "samples.png"}
    assert namespace["m"].values.shape == (3, 3)
