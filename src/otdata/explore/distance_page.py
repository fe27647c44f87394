"""The page's distance section: the OTDD of a choice with its ε, iterations and convergence, the
label-distance heat map, the class matching the coupling implies, the samples beside the target
samples the coupling sends them to, and both datasets in one PCA plane with coupling lines."""

from __future__ import annotations

import html
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from otdata import plots
from otdata.config import CONFIG_DIR
from otdata.distance.stats import class_sums
from otdata.explore.items import Choice, Items, sample_items
from otdata.instantiate import safe_instantiate
from otdata.tasks.distance import label_distance_name

#: pyplot is not thread-safe: one figure is drawn at a time
FIGURE_LOCK = threading.Lock()
MATCHING_COLUMNS = ["source class", "sends most mass to", "share %", "nearest by W"]


@dataclass
class DistancePage:
    """What the distance section shows, ready for the page (images as PIL images)."""

    headline: str
    value: float | None = None
    converged: bool | None = None
    heatmap: Any = None
    matching: list[list] = field(default_factory=list)
    pairs: Any = None
    embedding: Any = None
    seconds: float = 0.0
    source: Items | None = None
    target: Items | None = None
    choice: Choice | None = None


def distance_node(cfg: DictConfig, label_distance: str, seed: int) -> dict:
    """The distance's settings: the run's `distance` group (``distance=...``, ``+distance.tol=...``)
    with the page's label distance; `sliced` takes `conf/distance/sliced.yaml` (or the run's, when it
    is the sliced one) with the page's seed."""
    node = OmegaConf.to_container(cfg.distance, resolve=True)
    sliced = str(node.get("_target_", "")).endswith("SlicedDatasetDistance")
    if label_distance == "sliced":
        base = node if sliced else OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "distance" / "sliced.yaml"))
        base = {k: v for k, v in base.items() if k != "defaults"}
        return {**base, "seed": int(seed)}
    if sliced:
        node = {k: v for k, v in OmegaConf.to_container(
            OmegaConf.load(CONFIG_DIR / "distance" / "gaussian.yaml")).items() if k != "defaults"}
    return {**node, "label_distance": label_distance}


def settings_key(node: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in node.items()))


def compute_page(catalog, choice: Choice, node: dict, report) -> DistancePage:
    """Read both sides, compute the distance, draw the figures; ``report(fraction, text)`` is called
    between the stages (and stops the work once the job is cancelled)."""
    start = time.perf_counter()
    report(0.02, "reading the source dataset")
    src = sample_items(catalog.datamodule(choice.source.dataset, choice.source.path), choice.source,
                       choice.per_class, choice.seed)
    report(0.2, "reading the target dataset")
    tgt = sample_items(catalog.datamodule(choice.target.dataset, choice.target.path), choice.target,
                       choice.per_class, choice.seed)
    report(0.4, f"OTDD of {len(src.y)} × {len(tgt.y)} items ({choice.label_distance} label distances)")
    distance = safe_instantiate(node, key="distance")
    result = distance(src.X, src.y, tgt.X, tgt.y, class_names1=src.class_names,
                      class_names2=tgt.class_names)
    page = DistancePage(headline="", value=float(result.value), converged=_converged(result),
                        source=src, target=tgt, choice=choice)
    if result.label_distances is not None:
        report(0.7, "drawing the label-distance heat map")
        page.heatmap = heatmap(result, src, tgt, node)
    if getattr(result, "f", None) is not None:
        report(0.75, "the class matching and the coupled samples")
        coupling = result.coupling()
        page.matching = matching_rows(coupling, result, src, tgt)
        page.pairs, page.embedding = coupling_figures(result, coupling, src, tgt, choice.seed)
    page.seconds = time.perf_counter() - start
    page.headline = headline(result, choice, src, tgt, page.seconds)
    report(1.0, "done")
    return page


def _converged(result) -> bool | None:
    return getattr(result, "converged", None)


def to_image(fig):
    """A matplotlib figure as a PIL image (drawn once; the page then sends the pixels)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def heatmap(result, src: Items, tgt: Items, node: dict):
    with FIGURE_LOCK:
        fig = plots.label_distance_heatmap(
            result.label_distances, result.class_names1, result.class_names2,
            title=f"Label distances: {src.name} vs {tgt.name}", row_label=f"{src.name} class",
            col_label=f"{tgt.name} class", colorbar_label=label_distance_name(node))
        return to_image(fig)


def class_mass(coupling: torch.Tensor, src: Items, tgt: Items) -> torch.Tensor:
    """``(C1, C2)``: the coupling's mass from each source class to each target class, each row
    divided by its source class's mass."""
    M = class_sums(coupling.detach().double().cpu(), src.y, len(src.class_names), tgt.y,
                   len(tgt.class_names))
    return M / M.sum(1, keepdim=True).clamp_min(1e-300)


def matching_rows(coupling, result, src: Items, tgt: Items) -> list[list]:
    """One row per source class present: where the coupling sends most of its mass (and which
    share), and the target class nearest in label distance."""
    M = class_mass(coupling, src, tgt)
    W = result.label_distances
    present = torch.unique(src.y).tolist()
    rows = []
    for i, c in enumerate(present):
        j = int(torch.argmax(M[c]))
        row = [src.class_names[c], tgt.class_names[j], round(100 * float(M[c, j]), 1)]
        if W is not None and i < W.shape[0]:
            k = int(torch.argmin(W[i]))
            row.append(f"{result.class_names2[k]} ({float(W[i, k]):.4g})")
        else:
            row.append("")
        rows.append(row)
    return rows


def pairs_image(src: Items, tgt: Items, matches: torch.Tensor, per_class: int = 1):
    """Rows of one source item per class (``per_class`` of each) followed by the 5 target items the
    coupling sends most of its mass to, every image captioned with its class."""
    from otdata.explore.tiles import tile_grid

    picks = plots.one_per_class(src.y, per_class * len(torch.unique(src.y)))
    side = src.image_shape[-1]
    rows = torch.stack([torch.cat([src.X[i:i + 1], tgt.X[matches[i]]]) for i in picks])
    captions = [[src.class_names[int(src.y[i])]] + [tgt.class_names[int(tgt.y[j])] for j in matches[i]]
                for i in picks]
    header = [src.name[:12]] + [f"match {j + 1}" for j in range(matches.shape[1])]
    return tile_grid(rows.reshape(len(picks), -1, side, side), captions, header, gap_after=0, scale=2)


def coupling_figures(result, coupling, src: Items, tgt: Items, seed: int):
    """The coupled samples (gray images only) and the PCA plane with coupling lines."""
    pairs = None
    if src.image_shape is not None and src.image_shape == tgt.image_shape:
        pairs = pairs_image(src, tgt, result.correspondences(k=5)[0])
    with FIGURE_LOCK:
        fig = plots.samples_and_coupling(
            src.X, src.y, tgt.X, tgt.y, coupling, n_lines=min(60, len(src.y)),
            source_classes=src.class_names, target_classes=tgt.class_names, source_name=src.name,
            target_name=tgt.name, seed=seed)
        return pairs, to_image(fig)


def _side_text(items: Items, side) -> str:
    extra = side.transform_text()
    return html.escape(items.name + (f" ({extra})" if extra else ""))


def headline(result, choice: Choice, src: Items, tgt: Items, seconds: float) -> str:
    """The section's first lines, as HTML: the number, and what it rests on. An unconverged solve
    is said so in words, never shown as a plain number."""
    pair = f"{_side_text(src, choice.source)} → {_side_text(tgt, choice.target)}"
    sizes = (f"{len(src.y)} × {len(tgt.y)} items ({choice.per_class} per class, seed {choice.seed}), "
             f"{html.escape(choice.label_distance)} label distances, {seconds:.2f} s")
    value = float(result.value)
    if getattr(result, "std_error", None) is not None:  # the sliced OTDD: no ε, no iterations
        return (f'<div class="otdd-box ok"><div class="otdd-line">s-OTDD({pair}) = '
                f'<span id="otdd-value" data-value="{value!r}" data-converged="true">{value:.6g}</span>'
                f' ± {float(result.std_error):.2g}</div><div class="otdd-detail">Sliced OTDD: '
                f'{result.n_iter} Monte Carlo slices, exact 1-D OT on each (no ε, no iterative solver, '
                f'no coupling or label distances to draw) · {sizes}</div></div>')
    eps = f"ε = {result.epsilon:.4g}"
    if result.epsilon_relative is not None:
        eps = (f"ε = {result.epsilon_relative:g} × cost scale {result.cost_scale:.4g} = "
               f"{result.epsilon:.4g}")
    solve = f"{eps} · {result.n_iter} Sinkhorn iterations · marginal error {result.marginal_error:.1e}"
    if result.converged:
        return (f'<div class="otdd-box ok"><div class="otdd-line">OTDD({pair}) = <span id="otdd-value" '
                f'data-value="{value!r}" data-converged="true">{value:.6g}</span></div>'
                f'<div class="otdd-detail">converged: yes · {solve} · {sizes}</div></div>')
    return (f'<div class="otdd-box bad"><div class="otdd-line">OTDD({pair}): <b>NOT converged</b> — '
            f'<span id="otdd-value" data-value="{value!r}" data-converged="false">≈ {value:.4g}, not a '
            f'number to trust</span></div><div class="otdd-detail">The Sinkhorn solve stopped short of '
            f'its tolerance ({solve}). Raise ε (distance.epsilon) or the iterations '
            f'(+distance.max_iter=...), or set distance.strict=true to refuse such results · {sizes}'
            f'</div></div>')


def error_html(error: BaseException, what: str = "This choice") -> str:
    """An error as the page shows it: what failed, the message (which names the fix)."""
    kind = type(error).__name__
    return (f'<div class="otdd-box error" id="page-error"><div class="otdd-line">{html.escape(what)} '
            f'cannot be computed ({html.escape(kind)})</div><pre class="otdd-message">'
            f'{html.escape(str(error))}</pre></div>')
