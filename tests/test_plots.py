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


def every_font_size(fig) -> list[tuple[float, str]]:
    fig.canvas.draw()
    return [(t.get_fontsize(), t.get_text()) for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
            if hasattr(t, "get_text") and t.get_text().strip()]


def test_every_text_of_every_figure_is_at_least_10_pt(drawn, tmp_path):
    """Readable on a slide: no caption, label, title or cell value under 10 pt."""
    X, y = torch.rand(40, 64), torch.arange(40) % 10
    names = [f"class {c}" for c in range(10)]
    P = torch.rand(40, 40)
    figs = [
        plots.label_distance_heatmap(torch.rand(10, 10), names, names),
        plots.correspondence_grid(X, X, torch.randint(0, 40, (40, 5)), rows=10, y_source=y, y_target=y,
                                  source_classes=names, target_classes=names),
        plots.image_rows({"before": X, "after": X}, per_row=10,
                         captions={"before": plots.class_captions(y[:10], names, y[:10], names, y[:10])}),
        plots.labeled_scatter([1, 2, 3], [3, 1, 2], ["a", "b", "c"], xlabel="x", ylabel="y", title="t"),
        plots.coupling_matrix(P, y, y, names, names),
        plots.samples_and_coupling(X, y, X, y, P, n_lines=5, source_classes=names, target_classes=names),
    ]
    figures.save_flow_snapshots({"steps": [0, 1, 2], "frames": torch.rand(3, 8, 64)}, "s.png",
                                image_shape=(1, 8, 8), captions=names[:8])
    figures.plot_history([{"step": s, "objective": 1.0 / (s + 1)} for s in range(5)], "h.png",
                         refresh_every=2)
    for fig in figs + drawn:
        small = [(size, text) for size, text in every_font_size(fig) if size < plots.MIN_FONT]
        assert not small, small


def test_snapshot_rows_come_where_the_particles_move_and_never_repeat(drawn):
    start, end = torch.zeros(4, 64), torch.ones(4, 64)
    moving = [start + (end - start) * min(t, 3) / 3 for t in range(31)]  # moves for 3 steps, then rests
    frames = torch.stack(moving)
    rows = figures.moving_rows(frames, 6)
    assert rows[0] == 0 and rows[-1] == 30 and len(rows) == 4  # steps 0, 1, 2 (or 3) and the last
    shown = frames[rows].reshape(len(rows), -1)
    assert all((shown[i] - shown[i + 1]).abs().mean() > 0.1 for i in range(len(rows) - 1))
    figures.save_flow_snapshots({"steps": list(range(31)), "frames": frames}, "s.png",
                                image_shape=(1, 8, 8), n_images=4)
    labels = [ax.get_ylabel() for ax in drawn[0].axes]
    assert labels[-1] == "step 30" and len(labels) == len(set(labels)) == 4
    assert figures.moving_rows(torch.zeros(5, 2, 4), 6) == [4]  # nothing moves: one row


def test_the_gif_names_the_classes_under_the_particles(tmp_path):
    trajectory = {"steps": [0, 5], "frames": torch.zeros(2, 4, 64)}  # black particles
    plain = figures.save_flow_gif(trajectory, tmp_path / "a.gif", image_shape=(1, 8, 8), n_images=4, nrow=4)
    named = figures.save_flow_gif(trajectory, tmp_path / "b.gif", image_shape=(1, 8, 8), n_images=4,
                                  nrow=4, captions=["zero", "one", "two", "three"])
    a, b = Image.open(plain), Image.open(named)
    b.seek(b.n_frames - 1)  # the last frame, the one held on screen
    strip = np.asarray(b.convert("L"))[a.height:]  # below the particles: the caption strip
    assert b.height > a.height and (strip < 128).sum() > 20  # dark text on white


def test_captions_show_the_expected_class_and_colour_right_and_wrong():
    captions = plots.class_captions([0, 1], ["na", "ki"], predicted=[7, 2], predicted_names=list("0123456789"),
                                    expected=[7, 3])
    assert captions == ["na\n→ 7\nmodel: 7", "ki\n→ 3\nmodel: 2"]
    assert plots.class_captions([1], ["na", "ki"], expected=[3]) == ["ki\n→ 3"]
    assert plots.agreement_colors([7, 2], [7, 3]) == [plots.RIGHT, plots.WRONG]


def test_a_ten_class_correspondence_grid_is_landscape(drawn):
    X, y = torch.rand(30, 16), torch.arange(30) % 10
    fig = plots.correspondence_grid(X, X, torch.randint(0, 30, (30, 5)), rows=10, y_source=y, y_target=y)
    width, height = fig.get_size_inches()
    assert width > height
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(shown) == 10 * 6 and sorted(ax.get_xlabel() for ax in shown[::6]) == [str(c) for c in range(10)]
