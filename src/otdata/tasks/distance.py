"""`task=distance`: the OTDD between a source and a target dataset, with its figures.

Writes into the run folder:
  distance.json            value, label distances, class names, sizes, seconds, settings
  label_distances.png      annotated heatmap of the class-to-class distances
  correspondences.png      source items beside the target items the coupling sends them to (images)
  distance.csv / .md       a one-row summary table
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from otdata.instantiate import safe_instantiate as instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from otdata import plots
from otdata.tables import write_table

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source, target = instantiate(cfg.source), instantiate(cfg.target)
    split = cfg.task.split
    Xs, ys = source.tensors(split, max_samples=cfg.task.n_source, flatten=True)
    Xt, yt = target.tensors(split, max_samples=cfg.task.n_target, flatten=True)
    distance = instantiate(cfg.distance)

    start = time.perf_counter()
    with Console(stderr=True).status(
        f"OTDD {source.name} ({len(ys)}) → {target.name} ({len(yt)}) ..."
    ):
        result = distance(Xs, ys, Xt, yt, class_names1=source.class_names,
                          class_names2=target.class_names)
    seconds = time.perf_counter() - start

    summary = {
        "source": source.name, "target": target.name, "value": float(result.value),
        "n_source": len(ys), "n_target": len(yt), "seconds": seconds,
    }
    record = {
        **result.to_dict(), **summary,
        "settings": OmegaConf.to_container(cfg.distance, resolve=True),
    }
    (out / "distance.json").write_text(json.dumps(record, indent=2))
    write_table([summary], out / "distance")
    plots.label_distance_heatmap(
        result.label_distances, source.class_names, target.class_names, out / "label_distances.png",
        title=f"Label distances (W2²): {source.name} vs {target.name}",
        row_label=source.name, col_label=target.name,
    )
    if Xs.shape[1] == Xt.shape[1] and int(Xs.shape[1] ** 0.5) ** 2 == Xs.shape[1]:
        plots.correspondence_grid(Xs, Xt, result.correspondences(k=5)[0],
                                  out / "correspondences.png")
    log.info("OTDD(%s, %s) = %.4f  (%d × %d, %.1f s) → %s", source.name, target.name,
             result.value, len(ys), len(yt), seconds, out)
    return {**summary, "objective": float(result.value)}
