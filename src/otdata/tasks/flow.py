"""`task=flow`: flow a labeled source dataset toward a target dataset.

Writes into the run folder (the results all at once, when every file is complete; `UNFINISHED`
marks a run that did not get there; `checkpoints/` as the flow goes):
  flow.pt                  the flowed dataset (`otdata.flows.FlowResult`: X, y, X0, correspondence,
                           history, trajectory), loadable with `FlowResult.load`
  flow_snapshots.png       a few particles at several steps (image data)
  flow.gif                 the flow, animated (image data)
  before_after.png         source particles before and after, and target samples
  objective.png            the objective and its parts per step
  history.csv / .md        the objective per step
  flow.csv / .md           a one-row summary (objective before and after, steps, class fidelity,
                           the target classifier's accuracy on the particles, settings)
  fidelity.csv / .md       per source class: its matched target class and the share of its mass
                           the final coupling sends there
  class_mass.png           the class-to-class mass of the final coupling
  checkpoints/             resumable state every `flow.checkpoint_every` steps (`task.resume=true`)
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from otdata.instantiate import safe_instantiate as instantiate
from omegaconf import DictConfig

from otdata import plots
from otdata.class_names import class_name
from otdata.flows import figures
from otdata.flows.fidelity import ClassFidelity, ClassFidelityWarning, warn_if_scrambled
from otdata.tables import write_table
from otdata.tasks.rundir import run_folder
from otdata.tasks.classifier import target_classifier
from otdata.tasks.common import data_note
from otdata.tasks.scoring import accuracy, mapped, predictions

log = logging.getLogger(__name__)


def load_source_target(cfg: DictConfig):
    """The source and target datamodules and their flattened (sub)sampled training tensors."""
    source, target = instantiate(cfg.source), instantiate(cfg.target)
    Xs, ys = source.tensors(cfg.task.split, max_samples=cfg.task.n_source, flatten=True)
    Xt, yt = target.tensors(cfg.task.split, max_samples=cfg.task.n_target, flatten=True)
    return source, target, (Xs, ys), (Xt, yt)


def save_flow_figures(result, Xt, out: Path, image_shape, title: str, yt=None,
                      source_classes=None, target_classes=None, target_name: str = "target",
                      classifier=None) -> None:
    """Snapshots, GIF, before/after rows and the objective curve of a finished flow.

    With labels and class names, every image is captioned with its class (the flowed particle with
    the target class it is pushed to, when the flow has a correspondence). With the target's
    ``classifier``, captions are green where it reads the image as the expected class, red where
    not."""
    refresh = flow_setting(result.config, "label_update_every")
    refresh = refresh if result.config.get("labels") != "joint" else None
    figures.plot_history(result.history, out / "objective.png", refresh_every=refresh,
                         title=f"Flow objective per step: {title}",
                         ylabel=f"objective ({result.config.get('objective', 'otdd')})")
    if image_shape is None:
        return
    names = list(source_classes) if source_classes is not None else None
    picks = plots.one_per_class(result.y, 12)
    before = [class_name(names, result.y[i]) for i in picks]
    corr = result.correspondence or {}
    after = [f"→ {class_name(target_classes, corr[int(result.y[i])])}" if int(result.y[i]) in corr
             else before[j] for j, i in enumerate(picks)]
    rows = {"before": result.X0[picks], "after": result.X[picks]}
    captions = {"before": before, "after": after}
    expected = {"before": _expected(result, result.y[picks]), "after": _expected(result, result.y[picks])}
    separate = ()
    if yt is not None:
        target_picks = plots.one_per_class(yt, 12)
        rows[f"{target_name} samples"] = Xt[target_picks]
        captions[f"{target_name} samples"] = [class_name(target_classes, yt[i]) for i in target_picks]
        expected[f"{target_name} samples"] = yt[target_picks]
        separate = (f"{target_name} samples",)
    else:
        rows["target"] = Xt
    colors, note = {}, ""
    if classifier is not None:
        for name, want in expected.items():
            said = predictions(classifier, rows[name])
            if said is not None:
                colors[name] = plots.agreement_colors(said, want)
        note = "; green: the target's classifier agrees, red: it does not" if colors else ""
    plots.image_rows(rows, out / "before_after.png", image_shape=image_shape, captions=captions,
                     separate=separate, title=f"{title}: the same particles before and after the "
                     f"flow (class names under the images{note})", caption_colors=colors,
                     separate_note="independent samples of each class, not paired with the "
                                   "columns above")
    if result.trajectory is not None:
        indices = result.trajectory.get("indices") if isinstance(result.trajectory, dict) else None
        labels = result.y[torch.as_tensor(indices)] if indices is not None else result.y
        names_along = [class_name(names, c) for c in labels]
        figures.save_flow_snapshots(result.trajectory, out / "flow_snapshots.png",
                                    image_shape=image_shape, captions=names_along,
                                    title=f"{title}: particles along the flow (same particles in "
                                          "every row; class names below)")
        figures.save_flow_gif(result.trajectory, out / "flow.gif", image_shape=image_shape,
                              title=title, captions=names_along)


def _expected(result, y) -> torch.Tensor:
    """The target class each particle of labels ``y`` should read as after the flow: its class
    through the flow's matching (the correspondence, or for a free flow the one its coupling
    implies)."""
    fid = result.class_fidelity
    matched = fid.matched if fid is not None else result.correspondence
    return torch.as_tensor(y) if matched is None else mapped(y, matched)


def classifier_scores(result, classifier) -> dict:
    """The target classifier's accuracy (%) on the particles before and after the flow, against
    the class each should read as (:func:`_expected`); empty without a classifier."""
    if classifier is None:
        return {}
    before, after = predictions(classifier, result.X0), predictions(classifier, result.X)
    if before is None or after is None:
        return {}
    want = _expected(result, result.y)
    return {"classifier_raw": accuracy(before, want), "classifier_flowed": accuracy(after, want)}


def summary_row(result, source: str, target: str, n_target: int, scores: dict | None = None) -> dict:
    """The flow's one-row table: what moved where, the objective before and after, whether every
    class kept to its matched class, the settings a sweep varies most (the rest are in the notes)."""
    config = result.config
    fid = result.class_fidelity
    spec = config.get("correspondence")
    return {
        "source": source, "target": target, "n_source": len(result.y), "n_target": n_target,
        "objective_start": result.history[0]["objective"],
        "objective_end": result.history[-1]["objective"], "steps": result.steps_run,
        "class_fidelity": None if fid is None else round(100 * fid.overall, 2),
        "worst_class_fidelity": None if fid is None else round(100 * min(fid.per_class.values()), 2),
        **{k: round(v, 2) for k, v in (scores or {}).items()},
        "objective": config.get("objective"), "labels": config.get("labels"),
        "step_size": config.get("step_size"), "epsilon": flow_setting(config, "epsilon"),
        "correspondence": "free" if spec is None or result.correspondence is None
        else spec if isinstance(spec, str) else "prescribed",
    }


FIDELITY_NOTES = (
    "`fidelity`: the share of the source class's mass that the final coupling of the flow sends to "
    "`matched_target` (the flow's correspondence, or for a free flow the matching its coupling "
    "implies). Below 99 %, part of the class is flowed into other classes while keeping its label.")


def report_fidelity(result, out: Path, source, target) -> None:
    """``fidelity.csv/.md``, ``class_mass.png`` and a log line (a warning when classes leak)."""
    fid: ClassFidelity | None = result.class_fidelity
    if fid is None:
        return
    sn, tn = source.class_names, target.class_names
    write_table(fid.rows(sn, tn), out / "fidelity", notes=FIDELITY_NOTES)
    names = [class_name(sn, c) for c in fid.source_classes], [class_name(tn, t) for t in fid.target_classes]
    plots.label_distance_heatmap(
        100 * fid.mass, *names, out / "class_mass.png", cmap="Blues", fmt="{:.0f}",
        title=f"{source.name} → {target.name}: where the final coupling sends each class\n"
              f"(% of each source class's mass; class fidelity {100 * fid.overall:.2f} %)",
        row_label=f"{source.name} class", col_label=f"{target.name} class",
        colorbar_label="% of the source class")
    if fid.keeps_classes:
        log.info("%s", fid.message(sn, tn))
    else:
        warn_if_scrambled(fid, sn, tn)


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


def image_shape_of(datamodule, d: int):
    """`(1, S, S)` for image datamodules whose flattened size is `d`, else None."""
    side = getattr(datamodule, "image_size", None)
    return (1, side, side) if side and side * side == d else None


def run(cfg: DictConfig) -> dict:
    """Flow, then write the results; they appear in the run folder together, once all are written
    (:func:`otdata.tasks.rundir.run_folder`). The checkpoints are written into the run folder's
    `checkpoints/` as the flow goes, where `task.resume=true` finds them."""
    with run_folder(cfg.paths.output_dir) as stage:
        return _run(cfg, stage)


def _run(cfg: DictConfig, out: Path) -> dict:
    source, target, (Xs, ys), (Xt, yt) = load_source_target(cfg)
    flow = instantiate(cfg.flow, checkpoint_dir=str(Path(cfg.paths.output_dir) / "checkpoints"))
    classifier = target_classifier(cfg)  # before the flow: a wrong classifier_ckpt fails at once
    log.info("Flowing %s (%d) toward %s (%d) for %d steps", source.name, len(ys), target.name,
             len(yt), flow.steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClassFidelityWarning)  # reported below, with class names
        result = flow.run(Xs, ys, target=(Xt, yt), resume=cfg.task.resume)
    result.save(out / "flow.pt")

    write_table(result.history, out / "history")
    report_fidelity(result, out, source, target)
    scores = classifier_scores(result, classifier)
    save_flow_figures(result, Xt, out, image_shape_of(source, Xs.shape[1]),
                      title=f"{source.name} → {target.name}", yt=yt,
                      source_classes=source.class_names, target_classes=target.class_names,
                      target_name=target.name, classifier=classifier)
    first, last = result.history[0]["objective"], result.history[-1]["objective"]
    notes = " ".join(filter(None, [settings_note(result.config), data_note(source=source, target=target)]))
    if scores:
        notes += (" `classifier_raw` / `classifier_flowed`: the target's frozen classifier's accuracy "
                  "(%) on the particles before / after the flow, against the class each is matched with.")
        log.info("The target's classifier reads %.2f %% of the particles as their matched class "
                 "before the flow, %.2f %% after", scores["classifier_raw"], scores["classifier_flowed"])
    write_table([summary_row(result, source.name, target.name, len(yt), scores)], out / "flow", notes=notes)
    log.info("Objective %.4f → %.4f in %d steps; results in %s", first, last, result.steps_run,
             cfg.paths.output_dir)
    fid = result.class_fidelity
    return {"source": source.name, "target": target.name, "objective": float(last),
            "initial_objective": float(first), "steps": result.steps_run,
            "class_fidelity": None if fid is None else fid.overall, **scores}
