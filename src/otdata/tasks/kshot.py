"""`experiment=kshot`: few-shot transfer by flowing a labeled source toward k shots of the target.

The target (`data@target`) gives only `task.shots` = k labeled items per class. A labeled source
(`data@source`, MNIST by default) lends `task.n_source` items per class, and every column of the
table trains the same classifier (`model`, LeNet-5 in the experiment) with the same budget
(`task.epochs`, `task.batch_size`) and scores it on the target's test split (the protocol of
Bonet et al., ICML 2025, Table 2, whose published rows are in :data:`PUBLISHED`):

  target_only   the k shots alone
  source        the source items under their matched target labels, plus the k shots (no flow)
  finetune      a classifier pre-trained on the source (`task.n_pretrain`, `task.pretrain_epochs`;
                cached under `task.cache_dir`), fine-tuned on the k shots (head: `task.head`)
  flow_<name>   the source items flowed toward the k shots (the `flow` group with each objective
                of `task.flows`: OTDD with fixed labels and a class correspondence, MMD, sliced),
                under their matched target labels, plus the k shots

Every column of a seed uses the same draw (:func:`otdata.tasks.kshot_methods.draw`): the same k
shots, the same source items and the same class matching. `task.seeds` lists the seeds of one run
(null: the run's `seed`, so that a `seed=0,1,2` sweep gives one job per seed and `otdata summarize`
averages them).

A flow toward 1-10 items per class must have class statistics that exist: the experiment uses the
means-only label cost (`distance=means`); the gaussian one needs `distance.ridge > 0` when k = 1
(see experiments/kshot/RESULTS.md for both, measured).

Writes `kshot.csv/.md` (one row per column: accuracy mean ± std over seeds, seconds per seed, and for
flows the share of flowed particles whose nearest shot has their label, the coupling's class
fidelity and whether the particles stayed finite), `kshot_runs.csv/.md` (one row per column and
seed) and `kshot.json` (rows, runs, matching per seed, settings, timings).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from otdata.instantiate import safe_instantiate as instantiate
from otdata.models import config_dict
from otdata.tables import write_table
from otdata.tasks.common import task_threads
from otdata.tasks.kshot_methods import BASELINES, Draw, Recipe, column_names, draw, flow, \
    nearest_shot_agreement, score, timed
from otdata.tasks.transfer_data import Dataset
from otdata.tasks.transferability import Experiment

log = logging.getLogger(__name__)

#: Bonet et al. (ICML 2025), Table 2: accuracy (%) on the target's test split, by (target, k):
#: (target only, WoW MMD-SW flow, their OTDD flow, Hua et al. 2023); None where not reported.
PUBLISHED = {
    ("FashionMNIST", 1): (26.0, 40.5, 30.5, 36.4), ("FashionMNIST", 10): (53.9, 65.4, 64.0, 66.2),
    ("FashionMNIST", 100): (71.1, 74.7, None, 73.5),
    ("KMNIST", 1): (18.4, 20.9, 18.8, 19.4), ("KMNIST", 10): (30.9, 44.7, 34.1, 44.1),
    ("KMNIST", 100): (60.1, 66.8, 66.3, 62.4),
    ("USPS", 1): (32.4, 37.4, 39.5, 35.0), ("USPS", 10): (60.3, 77.2, 72.7, 75.6),
    ("USPS", 100): (87.5, 89.7, None, 88.1),
}
COLUMNS = ["source", "target", "shots", "method", "accuracy", "accuracy_std", "n_seeds", "n_train",
           "nearest_shot", "class_fidelity", "finite", "seconds", "flow_seconds"]


def seeds(cfg: DictConfig) -> list[int]:
    """`task.seeds`, or the run's `seed` when it is null."""
    value = cfg.task.seeds
    if value is None:
        return [int(cfg.seed)]
    return [int(value)] if isinstance(value, int) else [int(s) for s in value]


def check(cfg: DictConfig) -> None:
    """Refuse settings that cannot make a k-shot table, naming the key and the fix."""
    task = cfg.task
    for key in ("shots", "n_source", "epochs", "batch_size"):
        value = task[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"task.{key} must be a positive integer, got {value!r}"
                             + (": a k-shot draw takes at least one item of every target class."
                                if key == "shots" else "."))
    unknown = [b for b in task.baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"task.baselines: unknown column(s) {unknown}; choose from {list(BASELINES)}.")
    if not task.flows and not task.baselines:
        raise ValueError("task.flows and task.baselines are both empty: there is no column to compute.")
    if not seeds(cfg):
        raise ValueError("task.seeds is empty: give at least one seed, or null for the run's `seed`.")


def load(cfg: DictConfig, side: str) -> Dataset:
    """The `source` or `target` dataset: its whole training split (what the draws come from) and
    its test split (`task.n_test` items, stratified; null = all)."""
    dm = instantiate(cfg[side])
    X, y = dm.tensors("train", flatten=True)
    X_test, y_test = dm.tensors("test", max_samples=cfg.task.n_test, flatten=True)
    return Dataset(dm.name, X, y, X_test, y_test, list(dm.class_names), getattr(dm, "image_size", None),
                   origin=f"data@{side}={dm.name}", train_split=lambda: (X, y))


def one_seed(cfg: DictConfig, source: Dataset, target: Dataset, recipe: Recipe, seed: int,
             pretrained) -> tuple[list[dict], Draw]:
    """Every column on the draw of `seed`: one record per column."""
    data = draw(cfg, source, target, seed)
    C, size = target.num_classes, target.image_size
    runs = []

    def record(method, model, seconds, n_train, **extra):
        acc = score(model, target)
        log.info("k=%d seed %d %s: %.2f%% (%.0f s)", cfg.task.shots, seed, method, acc, seconds)
        runs.append({"method": method, "seed": seed, "accuracy": acc, "n_train": n_train,
                     "seconds": round(seconds, 2), **extra})

    if "target_only" in cfg.task.baselines:
        model, t = timed(recipe.train, data.X_shots, data.y_shots, C, size, seed)
        record("target_only", model, t, len(data.y_shots))
    if "source" in cfg.task.baselines:
        X, y = data.with_shots(data.X_source)
        model, t = timed(recipe.train, X, y, C, size, seed)
        record("source", model, t, len(y))
    if "finetune" in cfg.task.baselines:
        model, t = timed(recipe.train, data.X_shots, data.y_shots, C, size, seed, start=pretrained(),
                         head=str(cfg.task.head))
        record("finetune", model, t, len(data.y_shots))
    for name, objective in zip(column_names(cfg.task.flows), cfg.task.flows):
        result, flow_seconds = timed(flow, cfg, objective, data)
        finite = bool(torch.isfinite(result.X).all())
        fidelity = result.class_fidelity
        X, y = data.with_shots(result.X)
        model, t = timed(recipe.train, X, y, C, size, seed)
        record(name, model, t + flow_seconds, len(y), flow_seconds=round(flow_seconds, 2), finite=finite,
               steps=result.steps_run,
               class_fidelity=None if fidelity is None else 100.0 * fidelity.overall,
               nearest_shot=nearest_shot_agreement(result.X, data.relabel(), data.X_shots, data.y_shots))
    return runs, data


def summarize_runs(runs: list[dict], source: str, target: str, shots: int) -> list[dict]:
    """One row per column: means over seeds (accuracy also with its standard deviation)."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        row = {"source": source, "target": target, "shots": shots, "method": method, "n_seeds": len(mine)}
        for key in ("accuracy", "n_train", "nearest_shot", "class_fidelity", "seconds", "flow_seconds"):
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                row[key] = round(statistics.fmean(values), 2)
        accuracies = [r["accuracy"] for r in mine]
        row["accuracy_std"] = round(statistics.stdev(accuracies), 2) if len(accuracies) > 1 else None
        if any("finite" in r for r in mine):
            row["finite"] = all(r.get("finite") for r in mine)
        rows.append(row)
    return rows


def notes(cfg: DictConfig, target: str, shots: int, n_seeds: int) -> str:
    """What the columns are, the published row of this (target, k) and the settings."""
    published = PUBLISHED.get((target, shots))
    paper = ("Published (Bonet et al. 2025, Table 2; LeNet-5, 3 flows × 5 trainings): target only "
             f"{published[0]}, WoW MMD-SW flow {published[1]}, their OTDD flow "
             f"{published[2] if published[2] is not None else '–'}, Hua et al. {published[3]}."
             if published else f"No published row for {target} with k={shots}.")
    return (f"Accuracy (%) on the {target} test split, mean (± std) over {n_seeds} seed(s); each seed "
            f"draws {shots} {target} item(s) per class and {cfg.task.n_source} source items per class, "
            "shared by every column. `nearest_shot`: share (%) of flowed particles whose nearest shot "
            "has their label; `class_fidelity`: the final coupling's share of each class sent to its "
            "matched class; `finite`: no NaN or infinite particle; `seconds`: per seed, flow and "
            f"training.\n\n{paper}\n\nSettings: model `{cfg.model.net._target_}`, {cfg.task.epochs} "
            f"epochs, batch {cfg.task.batch_size}; flow `{cfg.flow.labels}` labels, "
            f"{cfg.flow.steps} steps of {cfg.flow.step_size}, correspondence `{cfg.flow.correspondence}`, "
            f"label cost `{cfg.distance.label_distance}`.")


def run(cfg: DictConfig) -> dict:
    """The k-shot table of one (source, target, k) over `task.seeds` (see the module docstring)."""
    check(cfg)
    with task_threads(cfg):
        return _run(cfg)


def _run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    source, target = load(cfg, "source"), load(cfg, "target")
    if source.X.shape[1] != target.X.shape[1]:
        raise ValueError(f"{source.name} has {source.X.shape[1]} features and {target.name} "
                         f"{target.X.shape[1]}: flows need one input space; give both the same "
                         "image_size (e.g. target.image_size=28) or a features step.")
    model_cfg = cfg.task.model if cfg.task.get("model") is not None else cfg.model
    recipe = Recipe(model_cfg, cfg.trainer, int(cfg.task.epochs), int(cfg.task.batch_size), out / "training")
    experiment = Experiment(cfg, out)  # the source pre-training of experiment=transferability, cached
    runs, matchings = [], {}
    for seed in seeds(cfg):
        seed_runs, data = one_seed(cfg, source, target, recipe, seed,
                                   lambda: experiment.pretrain(source)[0])
        runs += seed_runs
        matchings[seed] = data.matching
    shots = int(cfg.task.shots)
    rows = summarize_runs(runs, source.name, target.name, shots)
    note = notes(cfg, target.name, shots, len(seeds(cfg)))
    write_table(rows, out / "kshot", COLUMNS, notes=note)
    write_table(runs, out / "kshot_runs", notes=note)
    seconds = time.perf_counter() - started
    record = {"rows": rows, "runs": runs, "matching": {str(s): m for s, m in matchings.items()},
              "published": PUBLISHED.get((target.name, shots)), "seconds": round(seconds, 1),
              "settings": {"task": OmegaConf.to_container(cfg.task, resolve=True),
                           "flow": OmegaConf.to_container(cfg.flow, resolve=True),
                           "distance": OmegaConf.to_container(cfg.distance, resolve=True),
                           "model": config_dict(model_cfg), "seed": cfg.seed}}
    (out / "kshot.json").write_text(json.dumps(record, indent=2, default=str))
    best = max((r for r in rows if r["method"].startswith("flow_")), key=lambda r: r["accuracy"], default=None)
    log.info("Results (%.0f s): %s", seconds, out / "kshot.md")
    return {"rows": rows, "runs": runs, "seconds": seconds,
            "objective": best["accuracy"] if best and math.isfinite(best["accuracy"]) else None}
