"""Figures people would rather look at than read: label-distance heatmaps, correspondence grids,
before/after image grids and labeled scatter plots. Every function writes a PNG and returns its path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write a matplotlib figure as PNG (making the folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def as_images(X: torch.Tensor, image_shape: Sequence[int] | None = None) -> np.ndarray:
    """`(n, d)` or `(n, 1, H, W)` → `(n, H, W)` numpy array; square side inferred from `d`."""
    X = torch.as_tensor(X).detach().float().cpu()
    if image_shape is not None:
        X = X.reshape(len(X), *image_shape)
    elif X.dim() == 2:
        side = int(round(X.shape[1] ** 0.5))
        if side * side != X.shape[1]:
            raise ValueError(f"features of size {X.shape[1]} are not square images; pass image_shape.")
        X = X.reshape(len(X), side, side)
    return X.reshape(len(X), X.shape[-2], X.shape[-1]).numpy()


def label_distance_heatmap(
    distances: torch.Tensor, row_names: Sequence[str], col_names: Sequence[str], path: str | Path,
    title: str = "Label distances", row_label: str = "source", col_label: str = "target",
    colorbar_label: str = "label distance", cmap: str = "viridis_r", fmt: str = "{:.3g}",
) -> Path:
    """Annotated heatmap of a (C1, C2) label-distance matrix (as in the OTDD paper's MNIST×USPS
    figure), or of any class-by-class matrix (``cmap``, ``fmt`` for the cell texts)."""
    D = torch.as_tensor(distances).detach().cpu().numpy()
    rows, cols = D.shape
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * cols, 1.0 + 0.5 * rows))
    image = ax.imshow(D, cmap=cmap)
    ax.set_xticks(range(cols), [str(c) for c in col_names], rotation=45, ha="right")
    ax.set_yticks(range(rows), [str(r) for r in row_names])
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(title)
    if rows * cols <= 400:
        threshold = D.min() + 0.5 * (D.max() - D.min())
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, fmt.format(D[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if D[i, j] > threshold else "black")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(colorbar_label)
    return save_figure(fig, path)


def _class_name(names: Sequence[str] | None, label) -> str:
    label = int(label)
    return str(names[label]) if names is not None and 0 <= label < len(names) else str(label)


def class_captions(labels, names: Sequence[str] | None = None, predicted=None,
                   predicted_names: Sequence[str] | None = None) -> list[str]:
    """Captions for `image_rows`: each image's class name, and with `predicted` a second line with
    what a classifier says (e.g. `Trouser` / `model: 1`)."""
    labels = [int(c) for c in torch.as_tensor(labels).flatten()]
    texts = [_class_name(names, c) for c in labels]
    if predicted is not None:
        said = [_class_name(predicted_names, c) for c in torch.as_tensor(predicted).flatten()]
        texts = [f"{t}\nmodel: {p}" for t, p in zip(texts, said)]
    return texts


def one_per_class(y: torch.Tensor, limit: int) -> list[int]:
    """Indices of the first item of each class, in class order, then more rounds up to `limit`."""
    y = torch.as_tensor(y).cpu()
    by_class = [torch.nonzero(y == c).flatten().tolist() for c in torch.unique(y).tolist()]
    picks: list[int] = []
    for round_ in range(max((len(ix) for ix in by_class), default=0)):
        for ix in by_class:
            if round_ < len(ix) and len(picks) < limit:
                picks.append(ix[round_])
    return picks


def correspondence_grid(
    X_source: torch.Tensor, X_target: torch.Tensor, matches: torch.Tensor, path: str | Path,
    image_shape: Sequence[int] | None = None, rows: int = 8, title: str | None = None,
    y_source: torch.Tensor | None = None, y_target: torch.Tensor | None = None,
    source_classes: Sequence[str] | None = None, target_classes: Sequence[str] | None = None,
    source_name: str = "source", target_name: str = "target",
) -> Path:
    """Each row: one source item, then the target items the coupling sends most of its mass to.

    `matches` is `(n_source, k)` target indices (e.g. the top-k of each coupling row). With labels,
    the rows show one source item per class and every image is captioned with its class name.
    """
    source, target = as_images(X_source, image_shape), as_images(X_target, image_shape)
    matches = torch.as_tensor(matches)[:, :6]
    if y_source is not None:
        picks = one_per_class(y_source, max(rows, len(torch.unique(torch.as_tensor(y_source)))))
        picks = picks[:max(rows, 10)]
    else:
        picks = np.linspace(0, len(source) - 1, num=min(rows, len(source))).astype(int).tolist()
    k = matches.shape[1]
    fig, axes = plt.subplots(len(picks), k + 1, figsize=(1.2 * (k + 1) + 0.6, 1.25 * len(picks)),
                             squeeze=False)
    for r, i in enumerate(picks):
        axes[r, 0].imshow(source[i], cmap="gray")
        if y_source is not None:
            axes[r, 0].set_xlabel(_class_name(source_classes, y_source[i]), fontsize=7, labelpad=1)
        for j in range(k):
            t = int(matches[i, j])
            axes[r, j + 1].imshow(target[t], cmap="gray")
            if y_target is not None:
                axes[r, j + 1].set_xlabel(_class_name(target_classes, y_target[t]), fontsize=7,
                                          labelpad=1)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title(f"{source_name}\nitem", fontsize=8)
    for j in range(k):
        axes[0, j + 1].set_title(f"{target_name}\nmatch {j + 1}", fontsize=8)
    fig.suptitle(title or f"{source_name} → {target_name}: each {source_name} item and the "
                 f"{k} {target_name} items\nthe OTDD coupling sends most of its mass to "
                 "(class names under the images)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def image_rows(
    rows: dict[str, torch.Tensor], path: str | Path, image_shape: Sequence[int] | None = None,
    per_row: int = 12, title: str | None = None,
    captions: Mapping[str, Sequence[str]] | None = None, separate: Sequence[str] = (),
    separate_note: str = "not paired with the columns above",
    caption_colors: Mapping[str, Sequence[str | None]] | None = None,
) -> Path:
    """One row of images per entry of `rows` (e.g. {"before": X0, "after": X1}), first `per_row` each.

    `captions[name]` puts a text under each image of that row (class name, prediction). Rows named
    in `separate` are drawn after a gap and a note, so they do not read as lined up with the
    columns above (e.g. target samples under a source's before/after rows). ``caption_colors[name]``
    colours those captions (e.g. green where a classifier agrees with the label, red where not).
    """
    captions = captions or {}
    layout: list[str | None] = []
    for name in rows:
        if name in separate and layout:
            layout.append(None)  # a spacer with the note
        layout.append(name)
    has_caption = bool(captions)
    heights = [1.0 if name is not None else 0.35 for name in layout]
    fig, axes = plt.subplots(
        len(layout), per_row, squeeze=False,
        figsize=(0.95 * per_row + 0.6, sum(heights) * (1.25 if has_caption else 1.0) + 0.4),
        gridspec_kw={"height_ratios": heights},
    )
    for r, name in enumerate(layout):
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        if name is None:
            for ax in axes[r]:
                ax.axis("off")
            following = layout[r + 1]
            axes[r, 0].text(0.0, 0.2, f"{following}: {separate_note}", fontsize=8, style="italic",
                            transform=axes[r, 0].transAxes, ha="left", va="center")
            continue
        images = as_images(rows[name][:per_row], image_shape)
        texts = captions.get(name)
        colors = (caption_colors or {}).get(name)
        for j in range(per_row):
            ax = axes[r, j]
            if j < len(images):
                ax.imshow(images[j], cmap="gray", vmin=0, vmax=1)
                if texts is not None and j < len(texts):
                    color = colors[j] if colors is not None and j < len(colors) and colors[j] else "black"
                    ax.set_xlabel(str(texts[j]), fontsize=7, labelpad=1, color=color)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.08, hspace=0.45 if captions else 0.12)
    return save_figure(fig, path)


def labeled_scatter(
    x: Sequence[float], y: Sequence[float], labels: Sequence[str], path: str | Path,
    xlabel: str, ylabel: str, title: str = "",
) -> Path:
    """Scatter plot with a text label next to each point and a least-squares line."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(x, y, color="tab:blue")
    for xi, yi, name in zip(x, y, labels):
        ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if len(x) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, slope * grid + intercept, color="tab:red", lw=1, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def transfer_scatter(rows: list[dict], key: str, outcome: str, ax, title: str) -> None:
    """Outcome against a distance, one labelled point per pair, error bars = std over seeds."""
    x = [r[key] for r in rows]
    y = [r[outcome] for r in rows]
    ax.errorbar(x, y, yerr=[r.get(f"{outcome}_std", 0.0) for r in rows], fmt="o", ms=4, capsize=2,
                color="tab:blue", ecolor="0.6")
    for r in rows:
        ax.annotate(r["pair"], (r[key], r[outcome]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel(key)
    ax.set_ylabel({"gain": "transfer gain (accuracy points)",
                   "error_drop": "relative drop in test error (%)"}[outcome])
    ax.set_title(title, fontsize=8)


def transfer_figures(rows: list[dict], stats: list[dict], out: Path, outcome: str) -> None:
    """The transferability experiment's figures: `scatter.png` (outcome against the OTDD, one point
    per pair) and, with more than one distance, `scatter_all.png` (one panel per distance)."""
    done = [r for r in rows if r.get("status") == "ok"]
    if not done:
        return
    by_key = {(s["distance"], s["outcome"]): s for s in stats}

    def title(key):
        s = by_key.get((key, outcome))
        if s is None:
            return key
        text = f"Pearson r = {s['pearson_r']:.2f}, Spearman ρ = {s['spearman_rho']:.2f} (n = {s['n']})"
        if "spearman_perm_p" in s:
            text += f"\ndataset-permutation p: Pearson {s['pearson_perm_p']:.3f}, Spearman {s['spearman_perm_p']:.3f}"
        return text

    fig, ax = plt.subplots(figsize=(7, 5))
    transfer_scatter(done, "otdd", outcome, ax, title("otdd"))
    save_figure(fig, out / "scatter.png")
    keys = [s["distance"] for s in stats if s["outcome"] == outcome]
    if len(keys) > 1:
        cols = min(3, len(keys))
        fig, axes = plt.subplots((len(keys) + cols - 1) // cols, cols, figsize=(5 * cols, 3.8 * ((len(keys) + cols - 1) // cols)),
                                 squeeze=False)
        for ax, key in zip(axes.flat, keys):
            transfer_scatter(done, key, outcome, ax, f"{key}\n{title(key)}")
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        fig.tight_layout()
        save_figure(fig, out / "scatter_all.png")
