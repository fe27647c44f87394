"""Figures that explain themselves: titles, labelled axes, class names under images, step numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from otdata import plots
from otdata.flows import figures


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting functions would save, kept open for inspection."""
    kept = []

    def keep(fig, path, dpi=120):
        kept.append(fig)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    monkeypatch.setattr(figures, "save_figure", keep)
    yield kept
    import matplotlib.pyplot as plt
    plt.close("all")


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


def test_objective_curve_has_title_labels_readable_log_ticks_and_refresh_marks(drawn):
    values = [100.0 / (1 + s) for s in range(16)]
    history = [{"step": s, "objective": v, "otdd": v, "grad_norm": 1.0, "seconds": 0.1}
               for s, v in enumerate(values)]
    figures.plot_history(history, "objective.png", refresh_every=5, title="USPS → MNIST")
    ax = drawn[0].axes[0]
    assert ax.get_title() == "USPS → MNIST" and ax.get_xlabel() == "flow step"
    assert ax.get_ylabel().startswith("objective value") and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "objective (= otdd)" and "otdd" not in labels    # not drawn twice
    assert any("refreshed (every 5 steps)" in label for label in labels)
    assert len(ax.lines) == 1 + 3                       # the curve and the marks at 5, 10, 15
    drawn[0].canvas.draw()
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert {"10", "20", "50"} <= set(ticks)             # 1-2-5 ticks in plain numbers


def test_image_rows_caption_every_image_and_set_apart_the_unpaired_row(drawn):
    X = torch.rand(3, 16)
    plots.image_rows({"before": X, "after": X, "target": X}, "rows.png", per_row=3,
                     captions={"before": ["a", "b", "c"], "target": ["x", "y", "z"]},
                     separate=["target"], title="T")
    fig = drawn[0]
    axes = np.array(fig.axes).reshape(4, 3)             # a spacer row before "target"
    assert [ax.get_xlabel() for ax in axes[0]] == ["a", "b", "c"]
    assert [ax.get_xlabel() for ax in axes[3]] == ["x", "y", "z"]
    assert axes[3, 0].get_ylabel() == "target" and not axes[2, 0].axison
    assert any("not paired with the columns above" in t for t in texts(fig))


def test_correspondence_grid_names_datasets_and_classes(drawn):
    X, y = torch.rand(20, 16), torch.arange(20) % 4
    matches = torch.arange(20).reshape(20, 1).repeat(1, 3) % 20
    plots.correspondence_grid(X, X, matches, "c.png", rows=4, y_source=y, y_target=y,
                              source_classes=["zero", "one", "two", "three"],
                              target_classes=list("ABCD"), source_name="USPS", target_name="MNIST")
    fig = drawn[0]
    axes = np.array(fig.axes).reshape(4, 4)             # one row per class, item + 3 matches
    assert [ax.get_xlabel() for ax in axes[:, 0]] == ["zero", "one", "two", "three"]
    assert [ax.get_xlabel() for ax in axes[1, 1:]] == ["B", "B", "B"]
    assert "USPS" in axes[0, 0].get_title() and "MNIST" in axes[0, 1].get_title()
    assert "USPS → MNIST" in fig._suptitle.get_text()


def test_heatmap_colour_bar_says_what_the_colours_are(drawn):
    plots.label_distance_heatmap(torch.rand(2, 3), ["a", "b"], ["x", "y", "z"], "h.png",
                                 colorbar_label="label distance (W2²)")
    assert drawn[0].axes[1].get_ylabel() == "label distance (W2²)"


def test_snapshots_caption_columns_and_gif_frames_carry_the_step(drawn, tmp_path):
    frames = torch.rand(3, 4, 64)
    trajectory = {"steps": [0, 5, 10], "frames": frames}
    figures.save_flow_snapshots(trajectory, "s.png", image_shape=(1, 8, 8), n_images=4,
                                captions=["0", "1", "2", "3"])
    last = drawn[0].axes[-1]
    assert [t.get_text() for t in last.get_xticklabels()] == ["0", "1", "2", "3"]
    assert drawn[0]._suptitle.get_text()

    path = figures.save_flow_gif(trajectory, tmp_path / "f.gif", image_shape=(1, 8, 8), n_images=4)
    gif = Image.open(path)
    headers = []
    for i in range(3):
        gif.seek(i)
        headers.append(np.asarray(gif.convert("L"))[:22])
    assert all((h < 128).any() for h in headers)         # text drawn in each frame's header
    assert not np.array_equal(headers[0], headers[2])    # ... and it changes with the step


def test_class_captions_name_the_class_and_the_model_prediction():
    assert plots.class_captions(torch.tensor([1, 0]), ["T-shirt", "Trouser"]) == ["Trouser", "T-shirt"]
    assert plots.class_captions([1], ["T-shirt", "Trouser"], predicted=torch.tensor([7])) == [
        "Trouser\nmodel: 7"]
