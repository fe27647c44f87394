"""`task=flow`: flow a labeled source dataset toward a target dataset.

Writes into the run folder:
  flow.pt                  the flowed dataset (`otdata.flows.FlowResult`: X, y, X0, correspondence,
                           history, trajectory), loadable with `FlowResult.load`
  flow_snapshots.png       a few particles at several steps (image data)
  flow.gif                 the flow, animated (image data)
  before_after.png         source particles before and after, and target samples
  objective.png            the objective and its parts per step
  history.csv / .md        the objective per step
  checkpoints/             resumable state every `flow.checkpoint_every` steps (`task.resume=true`)
"""

from __future__ import annotations

import logging
from pathlib import Path

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


def save_flow_figures(result, Xt, out: Path, image_shape, title: str) -> None:
    """Snapshots, GIF, before/after rows and the objective curve of a finished flow."""
    figures.plot_history(result.history, out / "objective.png")
    if image_shape is None:
        return
    plots.image_rows({"before": result.X0, "after": result.X, "target": Xt}, out / "before_after.png",
                     image_shape=image_shape, title=title)
    if result.trajectory is not None:
        figures.save_flow_snapshots(result.trajectory, out / "flow_snapshots.png", image_shape=image_shape)
        figures.save_flow_gif(result.trajectory, out / "flow.gif", image_shape=image_shape)


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
                      title=f"{source.name} → {target.name}")
    first, last = result.history[0]["objective"], result.history[-1]["objective"]
    log.info("Objective %.4f → %.4f in %d steps; results in %s", first, last, result.steps_run, out)
    return {"source": source.name, "target": target.name, "objective": float(last),
            "initial_objective": float(first), "steps": result.steps_run}
