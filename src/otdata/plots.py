"""Figures people would rather look at than read: label-distance heatmaps, correspondence grids,
before/after image grids, labeled scatter plots, and an OT coupling: as a matrix sorted by class
(:func:`coupling_matrix`) and as coupled pairs of samples in one 2-D plane
(:func:`samples_and_coupling`).

Every function returns its matplotlib ``Figure`` (a notebook shows it when it ends a cell) and, given
a ``path``, also writes it there as a PNG; ``path=None`` writes nothing. The figure is released from
pyplot once drawn, so a loop of figures holds no memory and a notebook shows each one once. Importing
this module leaves the matplotlib backend alone (a notebook's inline backend keeps working; with no
display, matplotlib itself falls back to Agg).

Every text is at least 10 pt at the size the figure is written (:data:`MIN_FONT`), so that the
figures stay readable on a slide.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from otdata.class_names import class_name

#: The smallest font size (pt) of any text in these figures.
MIN_FONT = 10
#: Caption colours where a classifier says the expected class, and where it does not.
RIGHT, WRONG = "tab:green", "tab:red"


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write a matplotlib figure as PNG (making the folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def finish(fig: Figure, path: str | Path | None, dpi: int = 120) -> Figure:
    """Write ``fig`` to ``path`` when one is given, release it from pyplot, and return it."""
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return fig


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
    distances: torch.Tensor, row_names: Sequence[str], col_names: Sequence[str],
    path: str | Path | None = None, title: str = "Label distances", row_label: str = "source", col_label: str = "target",
    colorbar_label: str = "label distance", cmap: str = "viridis_r", fmt: str = "{:.3g}",
) -> Figure:
    """Annotated heatmap of a (C1, C2) label-distance matrix (as in the OTDD paper's MNIST×USPS
    figure), or of any class-by-class matrix (``cmap``, ``fmt`` for the cell texts)."""
    D = torch.as_tensor(distances).detach().cpu().numpy()
    rows, cols = D.shape
    fig, ax = plt.subplots(figsize=(1.8 + 0.75 * cols, 1.2 + 0.6 * rows))
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
                ax.text(j, i, fmt.format(D[i, j]), ha="center", va="center", fontsize=MIN_FONT,
                        color="white" if D[i, j] > threshold else "black")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(colorbar_label)
    return finish(fig, path)


def class_captions(labels, names: Sequence[str] | None = None, predicted=None,
                   predicted_names: Sequence[str] | None = None, expected=None) -> list[str]:
    """Captions for `image_rows`: each image's class name; with `predicted`, a second line with what a
    classifier says (`Trouser` / `model: 1`); with `expected`, the class it should say for the image
    under a class correspondence, on a line between them (`na` / `→ 7` / `model: 7`): short lines,
    which fit under an image."""
    labels = [int(c) for c in torch.as_tensor(labels).flatten()]
    texts = [class_name(names, c) for c in labels]
    said = [None] * len(texts) if predicted is None else \
        [class_name(predicted_names, c) for c in torch.as_tensor(predicted).flatten()]
    want = [None] * len(texts) if expected is None else \
        [class_name(predicted_names, e) if e >= 0 else "none" for e in torch.as_tensor(expected).flatten().tolist()]
    return ["\n".join([t] + ([f"→ {w}"] if w is not None else []) + ([f"model: {p}"] if p is not None else []))
            for t, w, p in zip(texts, want, said)]


def agreement_colors(predicted, expected) -> list[str]:
    """`RIGHT` (green) where a classifier says the expected class, `WRONG` (red) where not: the
    caption colours of `image_rows`."""
    said, want = torch.as_tensor(predicted).flatten().tolist(), torch.as_tensor(expected).flatten().tolist()
    return [RIGHT if s == w else WRONG for s, w in zip(said, want)]


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
    X_source: torch.Tensor, X_target: torch.Tensor, matches: torch.Tensor,
    path: str | Path | None = None, image_shape: Sequence[int] | None = None, rows: int = 8, title: str | None = None,
    y_source: torch.Tensor | None = None, y_target: torch.Tensor | None = None,
    source_classes: Sequence[str] | None = None, target_classes: Sequence[str] | None = None,
    source_name: str = "source", target_name: str = "target",
) -> Figure:
    """Each row: one source item, then the target items the coupling sends most of its mass to.

    `matches` is `(n_source, k)` target indices (e.g. the top-k of each coupling row). With labels,
    the rows show one source item per class and every image is captioned with its class name. More
    than five rows are laid out in two blocks side by side (a landscape figure for a slide).
    """
    source, target = as_images(X_source, image_shape), as_images(X_target, image_shape)
    matches = torch.as_tensor(matches)[:, :6]
    if y_source is not None:
        picks = one_per_class(y_source, max(rows, len(torch.unique(torch.as_tensor(y_source)))))
        picks = picks[:max(rows, 10)]
    else:
        picks = np.linspace(0, len(source) - 1, num=min(rows, len(source))).astype(int).tolist()
    k = matches.shape[1]
    blocks = 2 if len(picks) > 5 else 1
    height = -(-len(picks) // blocks)
    widths = ([1.0] * (k + 1) + [0.25]) * blocks
    fig, axes = plt.subplots(height, len(widths) - 1, squeeze=False, gridspec_kw={"width_ratios": widths[:-1]},
                             figsize=(1.05 * sum(widths) + 0.3, 1.3 * height + 1.1))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    for n, i in enumerate(picks):
        r, col = n % height, (n // height) * (k + 2)
        images = [(source[i], y_source, source_classes, i)] + \
                 [(target[int(t)], y_target, target_classes, int(t)) for t in matches[i, :k]]
        for j, (image, labels, names, index) in enumerate(images):
            ax = axes[r, col + j]
            ax.axis("on")
            ax.imshow(image, cmap="gray")
            if labels is not None:
                ax.set_xlabel(class_name(names, labels[index]), fontsize=MIN_FONT, labelpad=1)
    for b in range(blocks):
        axes[0, b * (k + 2)].set_title(f"{source_name}\nitem", fontsize=MIN_FONT)
        for j in range(k):
            axes[0, b * (k + 2) + j + 1].set_title(f"{target_name}\nmatch {j + 1}", fontsize=MIN_FONT)
    fig.suptitle(title or f"{source_name} → {target_name}: each {source_name} item and the "
                 f"{k} {target_name} items the OTDD coupling sends most of its mass to", fontsize=12)
    fig.subplots_adjust(wspace=0.08, hspace=0.35, top=1 - 0.95 / (1.3 * height + 1.1))
    return finish(fig, path)


def image_rows(
    rows: dict[str, torch.Tensor], path: str | Path | None = None, image_shape: Sequence[int] | None = None,
    per_row: int = 12, title: str | None = None,
    captions: Mapping[str, Sequence[str]] | None = None, separate: Sequence[str] = (),
    separate_note: str = "not paired with the columns above",
    caption_colors: Mapping[str, Sequence[str | None]] | None = None,
) -> Figure:
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
    lines = max((str(t).count("\n") + 1 for texts in captions.values() for t in texts), default=0)
    heights = [1.0 if name is not None else 0.35 for name in layout]
    fig, axes = plt.subplots(
        len(layout), per_row, squeeze=False,
        figsize=(1.15 * per_row + 0.8, sum(heights) * (1.0 + 0.2 * lines) + 0.6),
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
            axes[r, 0].text(0.0, 0.2, f"{following}: {separate_note}", fontsize=MIN_FONT, style="italic",
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
                    ax.set_xlabel(str(texts[j]), fontsize=MIN_FONT, labelpad=1, color=color)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name.replace(" (", "\n("), fontsize=11)  # "test\n(learned map)" fits a row
    if title:
        fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(wspace=0.1, hspace=0.2 + 0.3 * lines)
    return finish(fig, path)


def labeled_scatter(
    x: Sequence[float], y: Sequence[float], labels: Sequence[str], path: str | Path | None = None,
    xlabel: str = "", ylabel: str = "", title: str = "",
) -> Figure:
    """Scatter plot with a text label next to each point and a least-squares line."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(x, y, color="tab:blue")
    for xi, yi, name in zip(x, y, labels):
        ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=MIN_FONT)
    if len(x) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, slope * grid + intercept, color="tab:red", lw=1, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return finish(fig, path)


def _dense(coupling) -> np.ndarray:
    """A coupling (dense or sparse tensor, numpy array) as a dense float64 numpy array."""
    if torch.is_tensor(coupling):
        coupling = (coupling.to_dense() if coupling.is_sparse else coupling).detach().cpu().double().numpy()
    return np.asarray(coupling, dtype=float)


def _labels_for(coupling: np.ndarray, y_source, y_target) -> tuple[np.ndarray, np.ndarray]:
    """The two label vectors as integer numpy arrays, checked against the coupling's shape."""
    ys = torch.as_tensor(y_source).cpu().long().numpy().ravel()
    yt = torch.as_tensor(y_target).cpu().long().numpy().ravel()
    if coupling.ndim != 2 or coupling.shape != (len(ys), len(yt)):
        raise ValueError(f"the coupling has shape {coupling.shape} but there are {len(ys)} source and "
                         f"{len(yt)} target labels; pass the labels of the two datasets in the order "
                         "the distance saw them (rows: source, columns: target).")
    return ys, yt


def coupling_matrix(
    coupling, y_source, y_target, source_classes: Sequence[str] | None = None,
    target_classes: Sequence[str] | None = None, path: str | Path | None = None,
    source_name: str = "source", target_name: str = "target", title: str | None = None,
    cmap: str = "Blues",
) -> Figure:
    """The coupling ``pi`` (``(n_source, n_target)``, e.g. ``DistanceResult.coupling()``) as an image
    whose rows and columns are sorted by class, with the class boundaries drawn and each block named
    (as in the OTDD paper): a coupling that respects classes is block-diagonal. The image holds the
    sorted coupling itself; the colour scale is a square root, so that small masses stay visible.
    When the two datasets share class names, the title gives the share of the mass that stays
    within a class."""
    from matplotlib.colors import PowerNorm

    P = _dense(coupling)
    ys, yt = _labels_for(P, y_source, y_target)
    rows, cols = np.argsort(ys, kind="stable"), np.argsort(yt, kind="stable")
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(P[rows][:, cols], cmap=cmap, aspect="auto", interpolation="antialiased",
                      norm=PowerNorm(0.5, vmin=0.0, vmax=max(float(P.max()), 1e-300)))
    for set_ticks, line, labels, names in ((ax.set_yticks, ax.axhline, ys[rows], source_classes),
                                           (ax.set_xticks, ax.axvline, yt[cols], target_classes)):
        values, starts, counts = np.unique(labels, return_index=True, return_counts=True)
        for start in starts[1:]:
            line(start - 0.5, color="0.35", lw=0.8)
        set_ticks(starts + (counts - 1) / 2, [class_name(names, c) for c in values], fontsize=10)
    ax.set_ylabel(f"{source_name} items (sorted by class)", fontsize=11)
    ax.set_xlabel(f"{target_name} items (sorted by class)", fontsize=11)
    source_names = np.array([class_name(source_classes, c) for c in ys])
    target_names = np.array([class_name(target_classes, c) for c in yt])
    if title is None:
        title = f"Optimal coupling {source_name} → {target_name}"
        if set(source_names) == set(target_names):
            same = P[source_names[:, None] == target_names[None, :]].sum() / P.sum()
            title += f"\n{100 * same:.1f} % of the mass stays within a class"
    ax.set_title(title, fontsize=12)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("coupling mass (square-root scale)", fontsize=10)
    bar.ax.tick_params(labelsize=10)
    return finish(fig, path)


def _class_colors(names: list[str]) -> dict[str, tuple]:
    """One colour per class name (tab10 up to 10 classes, tab20 up to 20, else a continuous map)."""
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20" if len(names) <= 20 else "turbo")
    return {n: cmap(i if len(names) <= 20 else i / max(1, len(names) - 1)) for i, n in enumerate(names)}


def pca_2d(*datasets) -> list[np.ndarray]:
    """Each dataset, centred on its own mean, projected on the first two principal axes of all of
    them together: one plane for all, whose axes show the variation the datasets share (their class
    structure) rather than the offset between their means, which would take the first axis."""
    flat = [torch.as_tensor(X).detach().cpu().double().reshape(len(X), -1).numpy() for X in datasets]
    if len({X.shape[1] for X in flat}) > 1:
        raise ValueError(f"the datasets have {[X.shape[1] for X in flat]} features; a common 2-D "
                         "embedding needs one feature space (resize or embed them first).")
    Z = np.concatenate([X - X.mean(0) for X in flat])
    Zf = Z.astype(np.float32)  # a picture's axes: single-precision products, double eigh
    if Z.shape[1] <= Z.shape[0]:  # the top eigenvectors of the smaller Gram matrix (an SVD of a
        _, vecs = np.linalg.eigh((Zf.T @ Zf).astype(np.float64))  # (4000, 784) block took 10 s
        axes = vecs[:, ::-1][:, :2]                                # on a busy 2-core machine)
    else:
        _, vecs = np.linalg.eigh((Zf @ Zf.T).astype(np.float64))
        axes = Z.T @ vecs[:, ::-1][:, :2]
        axes /= np.maximum(np.linalg.norm(axes, axis=0), 1e-300)
    axes = axes * np.where(axes[np.abs(axes).argmax(0), [0, 1]] < 0, -1.0, 1.0)  # one sign, run to run
    return np.split(Z @ axes, np.cumsum([len(X) for X in flat])[:-1])


def samples_and_coupling(
    X_source, y_source, X_target, y_target, coupling, n_lines: int = 40,
    source_classes: Sequence[str] | None = None, target_classes: Sequence[str] | None = None,
    path: str | Path | None = None, source_name: str = "source", target_name: str = "target",
    title: str | None = None, seed: int = 0,
) -> Figure:
    """Source samples beside the target samples, in one PCA plane of both datasets (:func:`pca_2d`),
    coloured by class, with a line for ``n_lines`` coupled pairs: ``n_lines`` source items drawn at random
    (``seed``), each joined to the target item its coupling row sends the most mass to.

    Each cloud is scaled to unit spread (a dataset of larger pixel variance would otherwise squeeze
    the other) and the target cloud is drawn to the right of the source cloud, so the lines
    read left to right; a line that ends in a cloud of its own colour joins two items of the same
    class. The lines are one ``LineCollection`` (``gid="coupled pairs"``)."""
    from matplotlib.collections import LineCollection

    P = _dense(coupling)
    ys, yt = _labels_for(P, y_source, y_target)
    if not 1 <= int(n_lines) <= len(ys):
        raise ValueError(f"n_lines={n_lines}: choose between 1 and the {len(ys)} source items.")
    Zs, Zt = (Z / max(Z.std(), 1e-12) for Z in pca_2d(X_source, X_target))  # clouds of one size
    shift = 1.25 * (max(Zs[:, 0].max(), Zt[:, 0].max()) - min(Zs[:, 0].min(), Zt[:, 0].min()))
    Zt = Zt + np.array([shift, 0.0])
    names_s = [class_name(source_classes, c) for c in ys]
    names_t = [class_name(target_classes, c) for c in yt]
    colors = _class_colors(list(dict.fromkeys([class_name(source_classes, c) for c in np.unique(ys)] +
                                              [class_name(target_classes, c) for c in np.unique(yt)])))
    fig, ax = plt.subplots(figsize=(11, 5.8))
    picks = np.random.default_rng(seed).choice(len(ys), size=int(n_lines), replace=False)
    ends = P[picks].argmax(1)
    ax.add_collection(LineCollection(np.stack([Zs[picks], Zt[ends]], axis=1), linewidths=0.8,
                                     colors=[colors[names_s[i]] for i in picks], alpha=0.55,
                                     gid="coupled pairs", zorder=1))
    for Z, names, marker in ((Zs, names_s, "o"), (Zt, names_t, "s")):
        ax.scatter(Z[:, 0], Z[:, 1], c=[colors[n] for n in names], s=10, marker=marker, alpha=0.75,
                   linewidths=0, zorder=2)
    ax.scatter(Zs[picks, 0], Zs[picks, 1], s=28, facecolors="none", edgecolors="black",
               linewidths=0.7, zorder=3)
    for Z, name in ((Zs, source_name), (Zt, target_name)):
        ax.text(Z[:, 0].mean(), 0.97, name, ha="center", va="top", fontsize=12, fontweight="bold",
                transform=ax.get_xaxis_transform())
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=n) for n, c in colors.items()]
    ax.legend(handles=handles, title="class", fontsize=10, title_fontsize=10, loc="center left",
              bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("first principal axis of both datasets, each centred (target shifted right)",
                  fontsize=10)
    ax.set_ylabel("second principal axis", fontsize=10)
    ax.set_title(title or f"{source_name} samples and the {target_name} samples the optimal "
                 f"coupling sends them to\n({n_lines} random {source_name} items, each joined to its "
                 "largest coupling entry; circled)", fontsize=12)
    ax.margins(0.04, 0.14)
    return finish(fig, path)


def transfer_scatter(rows: list[dict], key: str, outcome: str, ax, title: str) -> None:
    """Outcome against a distance, one labelled point per pair, error bars = std over seeds."""
    x = [r[key] for r in rows]
    y = [r[outcome] for r in rows]
    ax.errorbar(x, y, yerr=[r.get(f"{outcome}_std", 0.0) for r in rows], fmt="o", ms=4, capsize=2,
                color="tab:blue", ecolor="0.6")
    for r in rows:
        ax.annotate(r["pair"], (r[key], r[outcome]), fontsize=MIN_FONT, xytext=(3, 2), textcoords="offset points")
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel(key)
    ax.set_ylabel({"gain": "transfer gain (accuracy points)",
                   "error_drop": "relative drop in test error (%)"}[outcome])
    ax.set_title(title, fontsize=11)


def transfer_figures(rows: list[dict], stats: list[dict], out: Path | None, outcome: str
                     ) -> dict[str, Figure]:
    """The transferability experiment's figures: `scatter.png` (outcome against the OTDD, one point
    per pair) and, with more than one distance, `scatter_all.png` (one panel per distance), by file
    name; written into the folder `out` unless it is None."""
    done = [r for r in rows if r.get("status") == "ok"]
    figs: dict[str, Figure] = {}
    if not done:
        return figs
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
    figs["scatter.png"] = fig
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
        figs["scatter_all.png"] = fig
    return {name: finish(fig, None if out is None else out / name) for name, fig in figs.items()}
