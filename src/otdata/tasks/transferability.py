"""`experiment=transferability`: does a smaller OTDD between two datasets mean more gain from transfer?

For every (source, target) pair of `task.pairs` (or every ordered pair of `task.datasets`):
  1. the OTDD between a subsample of the source and one of the target (`distance` group; the OTDD is
     symmetric, so it is computed once per unordered pair);
  2. a classifier pre-trained on a source subsample (once per source, reused by all its pairs);
  3. for each seed of `task.seeds`, the same small target sample (`task.n_finetune`) trained on twice
     with the same budget (epochs, batch size, optimizer): once starting from the pre-trained weights
     (the head is replaced when the class counts differ), once from scratch;
  4. transfer gain = target test accuracy fine-tuned − from scratch (percentage points), averaged
     over the seeds.
Then Pearson and Spearman correlations (with p-values) between OTDD and gain over the pairs; the
OTDD paper (Alvarez-Melis & Fusi 2020) reports a negative one (ρ ≈ −0.59 on *NIST).

Datasets are data configs (`conf/data/<name>.yaml`, loaded like the repurpose task's sources) or
sub-tasks named in `task.subsets` (some classes / a disjoint part of a data config's split, see
`otdata.models.transfer.carve`). A dataset whose files are missing is skipped: its pairs get a row whose
status says so (`task.strict=true` stops instead).

Writes `transferability.csv/.md` (one row per pair), `transferability.json` (rows, per-seed
accuracies, correlations, settings), `scatter.png` (gain against OTDD, one labelled point per pair)
and the pre-trained source classifiers under `pretrained/`.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from otdata.instantiate import safe_instantiate as instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from otdata import plots
from otdata.correlation import correlate, describe
from otdata.data import DataFileError
from otdata.models import Classifier
from otdata.tables import write_table
from otdata.tasks.common import source_config
from otdata.models import config_dict, load_or_train_classifier
from otdata.models.transfer import (TensorDataModule, accuracy, build, carve, fit, quiet_lightning,
                             sample, transfer_weights)

log = logging.getLogger(__name__)

COLUMNS = ["pair", "source", "target", "otdd", "scratch_acc", "finetune_acc", "gain", "gain_std",
           "source_acc", "head", "n_pretrain", "n_finetune", "n_test", "seeds", "seconds", "status"]
#: The OTDD paper's *NIST result, for the record.
PAPER_SPEARMAN = -0.59


@dataclass
class Dataset:
    """One dataset of the experiment, in memory: a pool of training items and a test set."""

    name: str
    X: torch.Tensor           # training pool, flattened (n, d)
    y: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    image_size: int | None = None
    origin: str = ""          # what it was built from, for the record

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def resolve_pairs(task: DictConfig) -> list[tuple[str, str]]:
    """`task.pairs`: "all" (every ordered pair of `task.datasets`) or a list of [source, target]."""
    pairs = task.pairs
    if isinstance(pairs, str):
        if pairs != "all":
            raise ValueError(f"task.pairs must be 'all' or a list of [source, target], got {pairs!r}.")
        names = list(task.datasets)
        if len(set(names)) != len(names):
            raise ValueError(f"task.datasets lists a dataset twice: {names}.")
        return list(itertools.permutations(names, 2))
    out = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple, ListConfig)) or len(pair) != 2:
            raise ValueError(f"each entry of task.pairs must be [source, target], got {pair!r}.")
        out.append((str(pair[0]), str(pair[1])))
    return out


class Loader:
    """Loads each dataset once per run (data configs by name, sub-tasks from `task.subsets`)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.loaded: dict[str, Dataset | DataFileError] = {}
        self._bases: dict[tuple[str, str], tuple] = {}

    def __call__(self, name: str) -> Dataset:
        if name not in self.loaded:
            try:
                self.loaded[name] = self._load(name)
            except DataFileError as error:
                log.warning("Skipping %s: %s", name, str(error).splitlines()[0])
                self.loaded[name] = error
        found = self.loaded[name]
        if isinstance(found, DataFileError):
            raise found
        return found

    def _datamodule(self, name: str):
        return instantiate(source_config(self.cfg, name).source)

    def _load(self, name: str) -> Dataset:
        task = self.cfg.task
        subsets = task.get("subsets") or {}
        if name in subsets:
            return self._subset(name, subsets[name])
        dm = self._datamodule(name)
        X, y = dm.tensors("train", max_samples=task.n_pool, flatten=True)
        X_test, y_test = dm.tensors("test", max_samples=task.n_test, flatten=True)
        return Dataset(dm.name, X, y, X_test, y_test, list(dm.class_names),
                       getattr(dm, "image_size", None), origin=f"data={name}")

    def _subset(self, name: str, spec: DictConfig) -> Dataset:
        base, split = str(spec.data), str(spec.get("split", "train"))
        if (base, split) not in self._bases:
            dm = self._datamodule(base)
            X, y = dm.tensors(split, flatten=True)
            self._bases[(base, split)] = (X, y, list(dm.class_names), getattr(dm, "image_size", None))
        X, y, names, image_size = self._bases[(base, split)]
        (X_tr, y_tr), (X_te, y_te), kept = carve(
            X, y, names, classes=spec.get("classes"), part=int(spec.get("part", 0)),
            parts=int(spec.get("parts", 1)), test_fraction=float(spec.get("test_fraction", 0.5)),
            seed=int(spec.get("seed", 0)))
        keep = sample(y_tr, self.cfg.task.n_pool, seed=0)
        X_tr, y_tr = X_tr[keep], y_tr[keep]
        keep = sample(y_te, self.cfg.task.n_test, seed=0)
        X_te, y_te = X_te[keep], y_te[keep]
        origin = (f"{base} {split} split, classes {kept}, part {spec.get('part', 0)} of "
                  f"{spec.get('parts', 1)}, {len(y_tr)} train / {len(y_te)} test")
        return Dataset(name, X_tr, y_tr, X_te, y_te, kept, image_size, origin=origin)


class Experiment:
    """The per-pair computations, with the run-wide caches (distances, pre-trained models)."""

    def __init__(self, cfg: DictConfig, out: Path):
        self.cfg, self.task, self.out = cfg, cfg.task, out
        self.model_cfg = self.task.model if self.task.get("model") is not None else cfg.model
        self.distance = instantiate(cfg.distance)
        self.distances: dict[frozenset, float] = {}
        self.pretrained: dict[str, tuple[Classifier, float]] = {}

    def otdd(self, source: Dataset, target: Dataset) -> float:
        key = frozenset((source.name, target.name))
        if key not in self.distances:
            n = self.task.n_distance
            i, j = sample(source.y, n, self.cfg.seed), sample(target.y, n, self.cfg.seed)
            start = time.perf_counter()
            result = self.distance(source.X[i], source.y[i], target.X[j], target.y[j],
                                   class_names1=source.class_names, class_names2=target.class_names)
            self.distances[key] = float(result.value)
            log.info("OTDD(%s, %s) = %.4g (%d × %d, %.0f s)", source.name, target.name,
                     result.value, len(i), len(j), time.perf_counter() - start)
        return self.distances[key]

    def pretrain(self, source: Dataset) -> tuple[Classifier, float]:
        """The classifier pre-trained on `source` (trained once per run) and its source test accuracy."""
        if source.name not in self.pretrained:
            task, seed = self.task, self.cfg.seed
            keep = sample(source.y, task.n_pretrain, seed)
            dm = TensorDataModule(source.name, {"train": (source.X[keep], source.y[keep]),
                                                "test": (source.X_test, source.y_test)},
                                  source.class_names, source.image_size, seed=seed,
                                  batch_size=task.pretrain_batch_size, val_fraction=0.1)
            L.seed_everything(seed, workers=True)
            model = build(self.model_cfg, source.num_classes, source.X, source.image_size)
            trainer = config_dict(self.cfg.trainer)
            trainer.update(max_epochs=int(task.pretrain_epochs), min_epochs=1,
                           enable_progress_bar=False, enable_model_summary=False,
                           default_root_dir=str(self.out / "pretrained"))
            start = time.perf_counter()
            with quiet_lightning():
                model, _ = load_or_train_classifier(
                    dm, self.out / "pretrained" / f"{source.name}.ckpt", model=model,
                    trainer=trainer, out_dir=self.out / "pretrained" / source.name, seed=seed)
            acc = accuracy(model, source.X_test, source.y_test)
            log.info("Pre-trained on %s (%d items, %d epochs): %.2f%% source test accuracy (%.0f s)",
                     source.name, len(keep), task.pretrain_epochs, acc, time.perf_counter() - start)
            self.pretrained[source.name] = (model, acc)
        return self.pretrained[source.name]

    def one_seed(self, pretrained: Classifier, target: Dataset, seed: int) -> dict:
        """Fine-tuned and from-scratch target test accuracies on one seeded target sample."""
        task = self.task
        keep = sample(target.y, task.n_finetune, seed)
        X, y = target.X[keep], target.y[keep]
        budget = dict(epochs=task.finetune_epochs, batch_size=task.finetune_batch_size,
                      trainer=self.cfg.trainer, root=self.out / "finetune", seed=seed)
        L.seed_everything(seed, workers=True)
        scratch = fit(build(self.model_cfg, target.num_classes, X, target.image_size), X, y, **budget)
        L.seed_everything(seed, workers=True)
        tuned = build(self.model_cfg, target.num_classes, X, target.image_size)
        fresh = transfer_weights(pretrained, tuned, head=task.head)
        fit(tuned, X, y, **budget)
        scratch_acc = accuracy(scratch, target.X_test, target.y_test)
        tuned_acc = accuracy(tuned, target.X_test, target.y_test)
        return {"seed": seed, "n_finetune": len(y), "scratch_acc": scratch_acc,
                "finetune_acc": tuned_acc, "gain": tuned_acc - scratch_acc,
                "head": "replaced" if any(k.startswith("net.classifier.") for k in fresh) else "kept"}

    def pair(self, source: Dataset, target: Dataset) -> tuple[dict, list[dict]]:
        start = time.perf_counter()
        if source.X.shape[1] != target.X.shape[1]:
            raise ValueError(f"{source.name} has {source.X.shape[1]} features and {target.name} "
                             f"{target.X.shape[1]}: they need the same input space.")
        distance = self.otdd(source, target)
        pretrained, source_acc = self.pretrain(source)
        runs = [self.one_seed(pretrained, target, int(seed)) for seed in seeds(self.task)]
        gains = [r["gain"] for r in runs]
        row = {
            "pair": f"{source.name}→{target.name}", "source": source.name, "target": target.name,
            "otdd": distance,
            "scratch_acc": statistics.fmean(r["scratch_acc"] for r in runs),
            "finetune_acc": statistics.fmean(r["finetune_acc"] for r in runs),
            "gain": statistics.fmean(gains),
            "gain_std": statistics.stdev(gains) if len(gains) > 1 else 0.0,
            "source_acc": source_acc, "head": runs[0]["head"],
            "n_pretrain": min(int(self.task.n_pretrain), len(source.y)),
            "n_finetune": runs[0]["n_finetune"], "n_test": len(target.y_test),
            "seeds": len(runs), "seconds": round(time.perf_counter() - start, 1), "status": "ok",
        }
        log.info("%s: OTDD %.4g, scratch %.2f%%, fine-tuned %.2f%%, gain %+.2f ± %.2f",
                 row["pair"], distance, row["scratch_acc"], row["finetune_acc"], row["gain"],
                 row["gain_std"])
        return row, [{"pair": row["pair"], **r} for r in runs]


def seeds(task: DictConfig) -> list[int]:
    value = task.seeds
    return [int(value)] if isinstance(value, int) else [int(s) for s in value]


def skipped_row(source: str, target: str, error: Exception) -> dict:
    if isinstance(error, DataFileError):
        reason = f"skipped: {error.dataset} data files missing ({error.files[0]})"
    else:
        reason = f"skipped: {error}"
    return {"pair": f"{source}→{target}", "source": source, "target": target, "status": reason}


def run(cfg: DictConfig) -> dict:
    threads = cfg.task.get("num_threads")
    if not threads:
        return _run(cfg)
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _run(cfg)
    finally:
        torch.set_num_threads(before)


def _run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pairs = resolve_pairs(cfg.task)
    load, experiment = Loader(cfg), Experiment(cfg, out)
    rows: list[dict] = []
    runs: list[dict] = []
    for source_name, target_name in pairs:
        try:
            source, target = load(source_name), load(target_name)
        except DataFileError as error:
            if cfg.task.strict:
                raise
            rows.append(skipped_row(source_name, target_name, error))
        else:
            try:
                row, pair_runs = experiment.pair(source, target)
            except ValueError as error:
                if cfg.task.strict:
                    raise
                log.warning("Skipping %s→%s: %s", source_name, target_name, error)
                rows.append(skipped_row(source_name, target_name, error))
            else:
                rows.append(row)
                runs.extend(pair_runs)
        write_table(rows, out / "transferability", COLUMNS)  # after every pair: nothing lost later

    done = [r for r in rows if r.get("status") == "ok"]
    correlation = correlate([r["otdd"] for r in done], [r["gain"] for r in done])
    log.info("OTDD vs transfer gain over %d pairs: %s", len(done), describe(correlation))
    if done:
        plots.labeled_scatter(
            [r["otdd"] for r in done], [r["gain"] for r in done], [r["pair"] for r in done],
            out / "scatter.png", xlabel="OTDD(source, target)",
            ylabel="transfer gain (accuracy points)",
            title=f"{describe(correlation)}".replace(", Spearman", "\nSpearman"))
    seconds = time.perf_counter() - started
    datasets = {name: (d.origin if isinstance(d, Dataset) else f"skipped: {d.files[0]}")
                for name, d in load.loaded.items()}
    record = {
        "rows": rows, "runs": runs, "correlation": correlation,
        "paper_spearman": PAPER_SPEARMAN, "datasets": datasets, "seconds": seconds,
        "settings": {
            "task": OmegaConf.to_container(cfg.task, resolve=True),
            "model": config_dict(experiment.model_cfg),
            "distance": OmegaConf.to_container(cfg.distance, resolve=True),
            "trainer": {k: v for k, v in config_dict(cfg.trainer).items() if k != "default_root_dir"},
            "seed": cfg.seed,
        },
    }
    (out / "transferability.json").write_text(json.dumps(record, indent=2, default=str))
    log.info("Results (%.0f s): %s", seconds, out / "transferability.md")
    rho = correlation["spearman_rho"]
    return {"rows": rows, "correlation": correlation, "seconds": seconds,
            "objective": rho if math.isfinite(rho) else None}
