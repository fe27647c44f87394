"""The page's flow section: flow a sample of the source toward the target with live progress, keep
every step's particles as a frame for the slider, and score the particles with the frozen MNIST
classifier before and after when the target is MNIST."""

from __future__ import annotations

import functools
import html
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from otdata.class_names import class_name
from otdata.data.subsample import per_class_indices
from otdata.explore.distance_page import DistancePage, distance_node
from otdata.explore.items import Choice
from otdata.flows.fidelity import ClassFidelityWarning
from otdata.instantiate import safe_instantiate
from otdata.models.shipped import load_shipped
from otdata.tasks.classifier import find_classifier
from otdata.tasks.flow import classifier_scores

log = logging.getLogger(__name__)


@dataclass
class FlowPage:
    """What the flow section shows: a status line (HTML) and one frame per step."""

    status: str
    frames: list[Any] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)
    scores: dict = field(default_factory=dict)


def flow_node(cfg: DictConfig, choice: Choice, steps: int) -> dict:
    """The run's `flow` config for a page flow: ``steps`` steps, every step recorded, no checkpoints
    or console bar; the OTDD with the page's label distance when it can drive a flow (`gaussian`,
    `means`), else `gaussian`."""
    node = OmegaConf.to_container(cfg.flow, resolve=True)
    label = choice.label_distance if choice.label_distance in ("gaussian", "means") else "gaussian"
    node.update(steps=int(steps), progress=False, checkpoint_every=0, trajectory_every=1,
                trajectory_particles=None, seed=int(choice.seed),
                distance=distance_node(cfg, label, choice.seed))
    return node


def run_flow(cfg: DictConfig, page: DistancePage, choice: Choice, steps: int, per_class: int,
             report) -> FlowPage:
    """Flow ``per_class`` source items of every class toward the page's target sample."""
    src, tgt = page.source, page.target
    if src.image_shape is None:
        raise ValueError("the flow section draws images: both datasets must be gray images")
    if not 1 <= int(steps) <= 500:
        raise ValueError(f"flow steps must be between 1 and 500, got {steps!r}")
    k = min(int(per_class), choice.per_class)
    idx = per_class_indices(src.y, k, seed=choice.seed, class_names=src.class_names)
    Xs, ys = src.X[idx], src.y[idx]
    node = flow_node(cfg, choice, steps)
    flow = safe_instantiate(node, key="flow")
    report(0.0, f"flowing {len(ys)} {src.name} particles toward {tgt.name}: step 0 of {steps}")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClassFidelityWarning)  # the status says the fidelity
        result = flow.run(Xs, ys, target=(tgt.X, tgt.y), on_step=lambda step, total, value: report(
            step / total, f"flow step {step} of {total}, objective {value:.4g}"))
    seconds = time.perf_counter() - start
    report(1.0, "drawing the frames")
    scores, note = _scores(cfg, choice, result)
    if choice.label_distance not in ("gaussian", "means"):
        note = (f"The flow used gaussian label distances ({choice.label_distance} ones cannot drive a "
                f"flow). {note}").strip()
    traj = result.trajectory
    frames = frame_images(traj["frames"], result.y, src.class_names, src.image_shape)
    history = [h["objective"] for h in result.history]
    return FlowPage(status=flow_status(result, src, tgt, seconds, scores, note), frames=frames,
                    steps=list(traj["steps"]), objective=history, scores=scores)


def _scores(cfg: DictConfig, choice: Choice, result) -> tuple[dict, str]:
    """The frozen MNIST classifier's accuracy before and after, or why there is none."""
    if choice.target.dataset != "mnist" or choice.target.path.strip():
        return {}, ""
    if choice.target.transform != "none":
        return {}, "The frozen MNIST classifier scores untransformed MNIST only (the target is transformed)."
    classifier, where = mnist_classifier(cfg)
    if classifier is None:
        return {}, (f"No frozen MNIST classifier {where}: `otdata experiment=repurpose` trains and caches "
                    "one (about 5 min), or start the explorer with task.classifier_ckpt=<file>.")
    return classifier_scores(result, classifier), ""


def mnist_classifier(cfg: DictConfig):
    """``(classifier, where)``: ``task.classifier_ckpt``, else the one `experiment=repurpose` uses
    for MNIST (shipped with otdata, or cached); ``(None, where it was looked for)`` when there is none. Read with
    ``weights_only=True`` (no pickled code runs)."""
    try:
        shipped, path = find_classifier(cfg, "mnist")
    except Exception as error:  # a failed look-up only means: no score
        return None, f"(its look-up failed: {type(error).__name__}: {error})"
    if shipped:
        return load_shipped(shipped), f"shipped with otdata ({shipped})"
    if path is None or not path.is_file():
        return None, f"at {path}" if path else "in the cache"
    return _load_classifier(str(path), path.stat().st_mtime), str(path)


@functools.lru_cache(maxsize=2)
def _load_classifier(path: str, mtime: float):
    from otdata.models import Classifier

    model = Classifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    return model.eval()


def shown_particles(y: torch.Tensor, limit: int = 24) -> list[int]:
    """Which particles a frame shows: two of each class (one when there are over 12), at most
    ``limit``, in class order."""
    classes = torch.unique(y).tolist()
    per = 2 if len(classes) <= 12 else 1
    picks = []
    for c in classes:
        picks += torch.nonzero(y == c).flatten()[:per].tolist()
    return picks[:limit]


def frame_images(frames: torch.Tensor, y: torch.Tensor, names: list[str], image_shape) -> list:
    """One PIL image per recorded step: the shown particles (:func:`shown_particles`), one column
    per class, each with its class name under it."""
    from otdata.explore.tiles import tile_grid

    picks = shown_particles(y)
    classes = torch.unique(y[picks]).tolist()
    per = len(picks) // len(classes)
    side = int(image_shape[-1])
    order = [[i for i in picks if int(y[i]) == c][:per] for c in classes]  # (classes, per)
    grid = [[order[c][r] for c in range(len(classes))] for r in range(per)]
    captions = [[class_name(names, y[i]) for i in row] for row in grid]
    index = torch.tensor(grid)
    return [tile_grid(frame[index].reshape(per, len(classes), side, side), captions) for frame in frames]


def flow_status(result, src, tgt, seconds: float, scores: dict, note: str) -> str:
    """The flow's summary line (HTML): objective before and after, class fidelity, accuracy."""
    first, last = result.history[0]["objective"], result.history[-1]["objective"]
    fid = result.class_fidelity
    parts = [f"Flowed {len(result.y)} {html.escape(src.name)} particles toward {html.escape(tgt.name)} "
             f"in {result.steps_run} steps ({seconds:.1f} s): objective {first:.4g} → {last:.4g}"]
    if fid is not None:
        parts.append(f"class fidelity {100 * fid.overall:.1f} %")
    if scores:
        parts.append(f'frozen MNIST classifier: <span id="acc-before">{scores["classifier_raw"]:.1f}</span> % '
                     f'before → <span id="acc-after">{scores["classifier_flowed"]:.1f}</span> % after '
                     "(against each particle's matched class)")
    text = " · ".join(parts)
    if note:
        text += f'<div class="otdd-detail">{html.escape(note)}</div>'
    return f'<div class="otdd-box ok" id="flow-summary">{text}</div>'


def frame_caption(page: FlowPage, index: int) -> str:
    """The line under the frame: which step, and the objective there."""
    if not page.frames:
        return ""
    index = max(0, min(int(index), len(page.frames) - 1))
    step = page.steps[index]
    value = page.objective[step] if step < len(page.objective) else page.objective[-1]
    return (f'<span id="frame-caption">step {step} of {page.steps[-1]}</span> · objective {value:.4g} · '
            "the same particles in every frame, with their class names")
