"""`task=distance`: the OTDD between a source and a target dataset, with its figures.

Writes into the run folder (all at once, when every file is complete; `UNFINISHED` marks a run
that did not get there):
  distance.json            every number of the result, label distances, class names, sizes, settings
  label_distances.png      annotated heatmap of the class-to-class distances (not for `distance=sliced`)
  correspondences.png      source items beside the target items the coupling sends them to (images;
                           not for `distance=sliced`, which has no coupling)
  distance.csv / .md       a one-row table: the OTDD and its companions, ε, iterations, convergence
                           and the method; the .md names each number and lists the settings
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
from otdata.tasks.common import data_note, data_settings
from otdata.tasks.rundir import run_folder

log = logging.getLogger(__name__)

#: Readable Markdown headers of the table's columns (the CSV keeps the short names).
HEADERS = {
    "label_distance": "label distance",
    "otdd": "**OTDD** = transport cost ⟨π, C⟩",
    "entropic_ot": "entropic OT_ε",
    "sinkhorn_divergence": "debiased Sinkhorn divergence",
    "epsilon_relative": "ε (relative)",
    "epsilon": "ε (absolute)",
    "iterations": "Sinkhorn iterations",
    "marginal_error": "marginal error",
    "std_error": "Monte Carlo standard error (sliced)",
}

NOTES = """\
**OTDD** is the number to quote: the transport cost ⟨π, C⟩ of the entropic coupling π between the
two labeled datasets, with C((x, y), (x', y')) = λx‖x − x'‖^p + λy W_p^p(class y, class y'). It tends
to the exact OTDD as ε → 0. **Entropic OT_ε** is the regularised objective (the cost plus ε times the
coupling's relative entropy); the **debiased Sinkhorn divergence** OT_ε(D1, D2) − ½OT_ε(D1, D1) −
½OT_ε(D2, D2) removes the entropic bias (0 for two equal datasets; empty when `debiased=false`).
ε (relative) is the value set in the config, in units of the cost scale; ε (absolute) is what the
solver used, in cost units."""


def table_row(source: str, target: str, record: dict, settings: dict, seconds: float) -> dict:
    """The table's row from `DistanceResult.to_dict()` (older results lack some keys: left empty)."""
    return {
        "source": source, "target": target,
        "label_distance": settings.get("label_distance"),
        "n_source": record.get("n1"), "n_target": record.get("n2"),
        "otdd": record.get("value"),
        "entropic_ot": record.get("entropic"),
        "sinkhorn_divergence": record.get("divergence"),
        "epsilon_relative": record.get("epsilon_relative"),
        "epsilon": record.get("epsilon"),
        "iterations": record.get("n_iter"),
        "converged": record.get("converged"),
        "marginal_error": record.get("marginal_error"),
        "std_error": record.get("std_error"),
        "backend": record.get("backend"),
        "seconds": round(seconds, 2),
    }


def settings_note(settings: dict) -> str:
    """One Markdown line listing the distance config (the method and every knob)."""
    knobs = ", ".join(f"`{k}={v}`" for k, v in settings.items() if k != "_target_")
    return f"Settings (`distance` config): {knobs}."


def run(cfg: DictConfig) -> dict:
    """Compute the distance and write its results; they appear in the run folder together, once
    all are written (:func:`otdata.tasks.rundir.run_folder`)."""
    with run_folder(cfg.paths.output_dir) as stage:
        return _run(cfg, stage)


def _run(cfg: DictConfig, out: Path) -> dict:
    source, target = instantiate(cfg.source), instantiate(cfg.target)
    split = cfg.task.split
    Xs, ys = source.tensors(split, max_samples=cfg.task.n_source, flatten=True)
    Xt, yt = target.tensors(split, max_samples=cfg.task.n_target, flatten=True)
    distance = instantiate(cfg.distance)
    settings = OmegaConf.to_container(cfg.distance, resolve=True)

    log.info("%s %s (%d) → %s (%d), %s label distances ...", method_name(settings), source.name,
             len(ys), target.name, len(yt), settings.get("label_distance", "no"))
    start = time.perf_counter()
    with Console(stderr=True).status(
        f"OTDD {source.name} ({len(ys)}) → {target.name} ({len(yt)}) ..."
    ):
        result = distance(Xs, ys, Xt, yt, class_names1=source.class_names,
                          class_names2=target.class_names)
    seconds = time.perf_counter() - start
    if not result.converged:
        log.warning("The OTDD solve did NOT converge (ε = %.4g absolute, %d iterations, marginal error "
                    "%.2e): its numbers are flagged converged=false in distance.json/.md. Raise "
                    "distance.epsilon or distance.max_iter, or set distance.strict=true to refuse such "
                    "results.", result.epsilon, result.n_iter, result.marginal_error)

    record = result.to_dict()
    if getattr(result, "std_error", None) is not None:  # the sliced OTDD's Monte Carlo error
        record["std_error"] = float(result.std_error)
    row = table_row(source.name, target.name, record, settings, seconds)
    summary = {"source": source.name, "target": target.name, "value": float(result.value),
               "n_source": len(ys), "n_target": len(yt), "seconds": seconds}
    (out / "distance.json").write_text(json.dumps(
        {**record, **summary, "table": row, "settings": settings,
         "data": data_settings(source=source, target=target)}, indent=2, default=str))
    columns = [c for c, v in row.items() if v is not None or c in ("otdd", "sinkhorn_divergence")]
    write_table([row], out / "distance", columns, headers=HEADERS,
                notes="\n\n".join(filter(None, [NOTES, settings_note(settings),
                                                  data_note(source=source, target=target)])))
    save_figures(result, settings, source, target, (Xs, ys), (Xt, yt), out)
    log.info("OTDD(%s, %s) = %.4f  (%d × %d, %.1f s) → %s", source.name, target.name,
             result.value, len(ys), len(yt), seconds, cfg.paths.output_dir)
    return {**summary, "objective": float(result.value)}


def save_figures(result, settings: dict, source, target, src, tgt, out: Path) -> None:
    """The label-distance heat map and the correspondence grid, for the results that have them
    (the sliced OTDD has neither label distances nor a coupling)."""
    (Xs, ys), (Xt, yt) = src, tgt
    if result.label_distances is not None:  # the classes present in the samples, by name
        plots.label_distance_heatmap(
            result.label_distances, result.class_names1, result.class_names2,
            out / "label_distances.png", title=f"Label distances: {source.name} vs {target.name}",
            row_label=f"{source.name} class", col_label=f"{target.name} class",
            colorbar_label=label_distance_name(settings),
        )
    square = Xs.shape[1] == Xt.shape[1] and int(Xs.shape[1] ** 0.5) ** 2 == Xs.shape[1]
    if square and result.f is not None:
        plots.correspondence_grid(
            Xs, Xt, result.correspondences(k=5)[0], out / "correspondences.png",
            y_source=ys, y_target=yt, source_classes=source.class_names,
            target_classes=target.class_names, source_name=source.name, target_name=target.name,
        )


def method_name(settings: dict) -> str:
    """"Sliced OTDD" or "OTDD", for the log."""
    return "Sliced OTDD" if str(settings.get("_target_", "")).endswith("SlicedDatasetDistance") \
        else "OTDD"


def label_distance_name(settings: dict) -> str:
    """What the heatmap's colours are, e.g. "W_2^2 between class Gaussians (Bures)"."""
    p = settings.get("p", 2)
    kind = {"gaussian": "between class Gaussians (Bures-Wasserstein)",
            "exact": "between class samples (exact OT)",
            "means": "between class means"}.get(settings.get("label_distance"), "")
    return f"label distance $W_{{{p}}}^{{{p}}}$ {kind}".strip()
