"""`task=flow`: flow a labeled source dataset toward a target dataset.

Writes into the run folder:
  flow.pt                  the flowed dataset (`otdata.flows.FlowResult`: X, y, X0, correspondence,
                           history, trajectory), loadable with `FlowResult.load`
  flow_snapshots.png       a few particles at several steps (image data)
  flow.gif                 the flow, animated (image data)
  before_after.png         source particles before and after, and target samples
  objective.png            the objective and its parts per step
  history.csv / .md        the objective per step
  flow.csv / .md           a one-row summary (objective before and after, steps, settings)
  checkpoints/             resumable state every `flow.checkpoint_every` steps (`task.resume=true`)
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from otdata.instantiate import safe_instantiate as instantiate
from omegaconf import DictConfig

from otdata import plots
from otdata.flows import figures
from otdata.tables import write_table

log = logging.getLogger(__name__)


def load_source_target(cfg: DictConfig):
    """The source and target datamodules and their flattened (sub)sampled training tensors."""
    source, target = instantiate(cfg.source), instantiate(cfg.target)
    Xs, ys = source.tensors(cfg.task.split, max_samples=cfg.task.n_source, flatten=True)
    Xt, yt = target.tensors(cfg.task.split, max_samples=cfg.task.n_target, flatten=True)
    return source, target, (Xs, ys), (Xt, yt)


def save_flow_figures(result, Xt, out: Path, image_shape, title: str, yt=None,
                      source_classes=None, target_classes=None, target_name: str = "target") -> None:
    """Snapshots, GIF, before/after rows and the objective curve of a finished flow.

    With labels and class names, every image is captioned with its class (the flowed particle with
    the target class it is pushed to, when the flow has a correspondence)."""
    refresh = flow_setting(result.config, "label_update_every")
    refresh = refresh if result.config.get("labels") != "joint" else None
    figures.plot_history(result.history, out / "objective.png", refresh_every=refresh,
                         title=f"Flow objective per step: {title}",
                         ylabel=f"objective ({result.config.get('objective', 'otdd')})")
    if image_shape is None:
        return
    names = list(source_classes) if source_classes is not None else None
    picks = plots.one_per_class(result.y, 12)
    before = [_name(names, result.y[i]) for i in picks]
    corr = result.correspondence or {}
    after = [f"→ {_name(target_classes, corr[int(result.y[i])])}" if int(result.y[i]) in corr
             else before[j] for j, i in enumerate(picks)]
    rows = {"before": result.X0[picks], "after": result.X[picks]}
    captions = {"before": before, "after": after}
    separate = ()
    if yt is not None:
        target_picks = plots.one_per_class(yt, 12)
        rows[f"{target_name} samples"] = Xt[target_picks]
        captions[f"{target_name} samples"] = [_name(target_classes, yt[i]) for i in target_picks]
        separate = (f"{target_name} samples",)
    else:
        rows["target"] = Xt
    plots.image_rows(rows, out / "before_after.png", image_shape=image_shape, captions=captions,
                     separate=separate, title=f"{title}: the same particles before and after the "
                     "flow (class names under the images)",
                     separate_note="independent samples of each class, not paired with the "
                                   "columns above")
    if result.trajectory is not None:
        indices = result.trajectory.get("indices") if isinstance(result.trajectory, dict) else None
        labels = result.y[torch.as_tensor(indices)] if indices is not None else result.y
        figures.save_flow_snapshots(result.trajectory, out / "flow_snapshots.png",
                                    image_shape=image_shape,
                                    captions=[_name(names, c) for c in labels],
                                    title=f"{title}: particles along the flow (same particles in "
                                          "every row; class names below)")
        figures.save_flow_gif(result.trajectory, out / "flow.gif", image_shape=image_shape,
                              title=title)


def summary_row(result, source: str, target: str, n_target: int) -> dict:
    """The flow's one-row table: what moved where, the objective before and after, the settings
    a sweep varies most (the rest are in the notes)."""
    config = result.config
    return {
        "source": source, "target": target, "n_source": len(result.y), "n_target": n_target,
        "objective_start": result.history[0]["objective"],
        "objective_end": result.history[-1]["objective"], "steps": result.steps_run,
        "objective": config.get("objective"), "labels": config.get("labels"),
        "step_size": config.get("step_size"), "epsilon": flow_setting(config, "epsilon"),
        "correspondence": "free" if result.correspondence is None else "prescribed",
    }


def flow_setting(config: dict, key: str):
    """A flow setting, wherever the flow's config keeps it (top level or its OTDD's settings)."""
    for node in (config, config.get("distance")):
        if isinstance(node, dict) and node.get(key) is not None:
            return node[key]
    return None


def settings_note(config: dict) -> str:
    """The flow's settings as one Markdown line (nested ones as `distance.epsilon=...`)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return "Settings (`flow` config): " + ", ".join(
        f"`{k}={v}`" for k, v in flat.items() if v is not None) + "."


def _name(names, label) -> str:
    label = int(label)
    return str(names[label]) if names is not None and 0 <= label < len(names) else str(label)


def image_shape_of(datamodule, d: int):
    """`(1, S, S)` for image datamodules whose flattened size is `d`, else None."""
    side = getattr(datamodule, "image_size", None)
    return (1, side, side) if side and side * side == d else None


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source, target, (Xs, ys), (Xt, yt) = load_source_target(cfg)
    flow = instantiate(cfg.flow, checkpoint_dir=str(out / "checkpoints"))
    log.info("Flowing %s (%d) toward %s (%d) for %d steps", source.name, len(ys), target.name,
             len(yt), flow.steps)
    result = flow.run(Xs, ys, target=(Xt, yt), resume=cfg.task.resume)
    result.save(out / "flow.pt")

    write_table(result.history, out / "history")
    save_flow_figures(result, Xt, out, image_shape_of(source, Xs.shape[1]),
                      title=f"{source.name} → {target.name}", yt=yt,
                      source_classes=source.class_names, target_classes=target.class_names,
                      target_name=target.name)
    first, last = result.history[0]["objective"], result.history[-1]["objective"]
    write_table([summary_row(result, source.name, target.name, len(yt))], out / "flow",
                notes=settings_note(result.config))
    log.info("Objective %.4f → %.4f in %d steps; results in %s", first, last, result.steps_run, out)
    return {"source": source.name, "target": target.name, "objective": float(last),
            "initial_objective": float(first), "steps": result.steps_run}
