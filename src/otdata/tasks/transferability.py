"""`experiment=transferability`: does a smaller OTDD between two datasets mean more gain from transfer?

For every (source, target) pair of `task.pairs` (or every ordered pair of `task.datasets`):
  1. dataset distances between seeded stratified subsamples (`task.n_distance` items) of the two
     training pools, through `otdata.distance.distance_matrix` (each dataset prepared once, each
     unordered pair computed once and cached on disk under `task.cache_dir`): the `distance` group
     on `task.representation` (the `otdd` column), every distance of `task.compare` on the same
     representation, and the `distance` group on each of `task.representations`
     (`otdd@<representation>` columns: input pixels, the papers' normalisation, per-dataset
     standardisation, or the penultimate features of one frozen pre-trained network);
  2. a classifier pre-trained on a source subsample of the pool (`task.n_pretrain` items), or on the
     source's whole training split (`task.n_pretrain=null`), once per source and settings (cached);
  3. for each seed of `task.seeds`, the same small target sample (`task.n_finetune`) trained on twice
     with the same budget: once from the pre-trained weights (the head is replaced when the class
     counts differ; `task.freeze` keeps some layers fixed), once from scratch;
  4. the transfer gain (fine-tuned − scratch target test accuracy, points) and the relative drop in
     test error (`error_drop`, % of the scratch error: the OTDD paper's measure), per seed and averaged.
Then, for every distance column and both outcomes (per ordered pair, and averaged over the two
directions of each unordered pair, "both ways"; minus each target's mean, "within target": does
the closer source serve a given target better?; and minus each source's mean, "within source": once
a source's overall strength is taken out, does it serve the closer targets better?): Pearson and
Spearman correlations with scipy's p-values, dataset-permutation p-values
(`otdata.correlation.permutation_test`) and bootstrap intervals over seeds (`bootstrap_seeds`), and
each distance's rank agreement with `otdd`; and how the outcome's variance splits into source,
target and direction parts (`pair_variance`): the part that flips with the direction is out of
reach of any symmetric distance.

Datasets are data configs (`conf/data/<name>.yaml`, loaded like the repurpose task's sources) or
sub-tasks named in `task.subsets` (some classes / a disjoint part of a data config's split, see
`otdata.data.subsample.carve`). A dataset whose files are missing is skipped: its pairs get a row
whose status says so (`task.strict=true` stops instead).

As a sweep: `task.pair_index=range(0,20)` runs one pair per job (e.g. one SLURM array task each),
`task.seeds=[0],[1],[2]` one seed per job; the jobs share pre-trained models and distances through
`task.cache_dir`, and `task.collect=<sweep folder>` merges their records into one.

Writes `transferability.csv/.md` (one row per pair), `correlations.csv/.md` (one row per distance
and outcome), `transferability.json` (rows, per-seed runs, statistics, timings, settings),
`scatter.png` (outcome against OTDD, labelled points, error bars over seeds), `scatter_all.png`
(one panel per distance) and `distances.png` (heat map of the OTDD matrix), all at once when every
file is complete (`UNFINISHED` marks a run that did not get there; one that failed keeps the pairs
it finished in `partial/`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from pathlib import Path

import lightning as L
import torch
from otdata.instantiate import safe_instantiate as instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from otdata import plots, progress
from otdata.data import DataFileError
from otdata.distance import distance_matrix
from otdata.models import Classifier
from otdata.tables import write_table
from otdata.models import config_dict, load_or_train_classifier
from otdata.data import TensorDataModule
from otdata.data.subsample import sample
from otdata.models.training import accuracy, build, fit, quiet_lightning, transfer_weights
from otdata.tasks.common import task_threads
from otdata.tasks.rundir import run_folder
from otdata.tasks.transfer_records import collect, columns, finish
from otdata.tasks.transfer_data import Dataset, Loader
from otdata.transfer_stats import error_drop, summarize_pair

log = logging.getLogger(__name__)

COLUMNS = ["pair", "source", "target", "otdd", "scratch_acc", "finetune_acc", "gain", "gain_std",
           "source_acc", "head", "n_pretrain", "n_finetune", "n_test", "seeds", "seconds", "status"]
def resolve_pairs(task: DictConfig) -> list[tuple[str, str]]:
    """`task.pairs`: "all" (every ordered pair of `task.datasets`), "augmentations" (every setting of
    `task.augmentations` as a source, toward `task.target`) or a list of [source, target]."""
    pairs = task.pairs
    if isinstance(pairs, str):
        if pairs == "augmentations":
            settings = list(task.get("augmentations") or {})
            if not settings or not task.get("target"):
                raise ValueError("task.pairs=augmentations needs task.augmentations (name → transform) and "
                                 "task.target (a data config), e.g. experiment=transferability_augment")
            return [(name, str(task.target)) for name in settings]
        if pairs != "all":
            raise ValueError(f"task.pairs must be 'all', 'augmentations' or a list of [source, target], "
                             f"got {pairs!r}.")
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


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Experiment:
    """The per-pair computations, with the run-wide caches (distances, pre-trained models)."""

    def __init__(self, cfg: DictConfig, out: Path):
        self.cfg, self.task, self.out = cfg, cfg.task, out
        self.model_cfg = self.task.model if self.task.get("model") is not None else cfg.model
        cache = self.task.get("cache_dir")
        self.cache = Path(cache) if cache else None
        self.distances: dict[str, dict[frozenset, float]] = {}
        self.timings: dict[str, dict] = {}
        self.pretrained: dict[str, tuple[Classifier, float]] = {}
        self.pretrain_sizes: dict[str, int] = {}  # items each source was pre-trained on (val included)
        self.pretrain_seconds: dict[str, float] = {}
        self.scratch: dict[tuple, float] = {}  # (target, pool size, seed) -> from-scratch test accuracy

    # ------------------------------------------------------------------ distances
    def distance_specs(self) -> dict[str, tuple[DictConfig, str]]:
        """Column name -> (distance config, representation) for every distance of the run."""
        task, main = self.task, str(self.task.representation)
        specs = {"otdd": (self.cfg.distance, main)}
        for name, node in (task.get("compare") or {}).items():
            specs[str(name)] = (node, main)
        for rep in task.get("representations") or []:
            if str(rep) != main:
                specs[f"otdd@{rep}"] = (self.cfg.distance, str(rep))
        return specs

    def represent(self, name: str, X: torch.Tensor, loader: "Loader") -> torch.Tensor:
        """Features a distance sees: `input` (as loaded, images in [0, 1]), `normalized` (the papers'
        transform, `(x - mean) / std` with the same constants for every dataset), `standardized`
        (each dataset by its own mean and std) or `features` (penultimate activations of the network
        pre-trained on `task.feature_source`, frozen)."""
        if name == "input":
            return X
        if name == "normalized":
            norm = self.task.normalization
            return (X - float(norm.mean)) / float(norm.std)
        if name == "standardized":
            return (X - X.mean()) / X.std()
        if name == "features":
            model, _ = self.pretrain(loader(str(self.task.feature_source)))
            with torch.no_grad():
                return torch.cat([model.net.embed(chunk) for chunk in X.split(1024)]).detach()
        raise ValueError(f"unknown representation {name!r}: input, normalized, standardized or features")

    def compute_distances(self, datasets: dict[str, Dataset], loader: "Loader",
                          needed: set[frozenset] | None = None) -> None:
        """Every distance of `distance_specs` among `datasets`, through `distance_matrix` (cached):
        the whole matrix (and its heat map), or only the unordered pairs of `needed`."""
        n, seed = self.task.n_distance, self.cfg.seed
        subsamples = {}
        for name, d in sorted(datasets.items()):  # one order for every job: the cache keys match
            keep = sample(d.y, n, seed)
            subsamples[name] = (d.X[keep], d.y[keep])
        names = list(subsamples)
        pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
        blocks = [names] if needed is None or all(frozenset((names[i], names[j])) in needed for i, j in pairs) \
            else [[names[i], names[j]] for i, j in pairs if frozenset((names[i], names[j])) in needed]
        for key, (node, rep) in self.distance_specs().items():
            dd = instantiate(node)
            start, found, computed = time.perf_counter(), {}, 0
            for block in blocks:
                data = {name: (self.represent(rep, subsamples[name][0], loader), subsamples[name][1])
                        for name in block}
                matrix = distance_matrix(data, dd,
                                         cache_dir=None if self.cache is None else self.cache / "distances")
                for i, j in itertools.combinations(range(len(block)), 2):
                    found[frozenset((block[i], block[j]))] = float(matrix.values[i, j])
                    computed += not matrix.cached[i][j]
            seconds = time.perf_counter() - start
            self.distances.setdefault(key, {}).update(found)
            t = self.timings.setdefault(key, {"representation": rep, "seconds": 0.0, "pairs": 0, "computed": 0})
            t["seconds"] = round(t["seconds"] + seconds, 2)
            t["pairs"] += len(found)
            t["computed"] += computed
            t["seconds_per_pair"] = round(t["seconds"] / t["computed"], 3) if t["computed"] else None
            log.info("%s on %s: %d pairs (%d computed) in %.1f s", key, rep, len(found), computed, seconds)
            if key == "otdd" and len(blocks) == 1 and len(names) > 1:
                plots.label_distance_heatmap(
                    matrix.values, names, names, self.out / "distances.png",
                    title=f"{node.get('label_distance', node.get('_target_', ''))} OTDD on {rep} "
                          f"({n} items per dataset)", row_label="", col_label="",
                    colorbar_label="OTDD")

    # ------------------------------------------------------------------ training
    def pretrain(self, source: Dataset) -> tuple[Classifier, float]:
        """The classifier pre-trained on `source` (trained once per settings, cached) and its source
        test accuracy: on `task.n_pretrain` stratified items of the pool, or on the whole training
        split when `task.n_pretrain` is null (10 % of them held out to pick the epoch)."""
        if source.name not in self.pretrained:
            task, seed = self.task, self.cfg.seed
            n_pretrain = None if task.n_pretrain is None else int(task.n_pretrain)
            if n_pretrain is None and source.train_split is not None:
                X_pre, y_pre = source.train_split()
            else:
                keep = sample(source.y, n_pretrain, seed)
                X_pre, y_pre = source.X[keep], source.y[keep]
            dm = TensorDataModule(source.name, {"train": (X_pre, y_pre),
                                                "test": (source.X_test, source.y_test)},
                                  source.class_names, source.image_size, seed=seed,
                                  batch_size=task.pretrain_batch_size, val_fraction=0.1)
            L.seed_everything(seed, workers=True)
            model = build(self.model_cfg, source.num_classes, source.X, source.image_size)
            trainer = config_dict(self.cfg.trainer)
            trainer.update(max_epochs=int(task.pretrain_epochs), min_epochs=1,
                           enable_progress_bar=False, enable_model_summary=False,
                           default_root_dir=str(self.out / "pretrained"))
            folder = self.out / "pretrained"
            if self.cache is not None:  # shared by the jobs of a sweep with the same settings
                folder = self.cache / "pretrained" / _digest(
                    config_dict(self.model_cfg), source.origin, len(source.y), n_pretrain,
                    int(task.pretrain_epochs), int(task.pretrain_batch_size), seed)
            start = time.perf_counter()
            with quiet_lightning():
                model, _ = load_or_train_classifier(
                    dm, folder / f"{source.name}.ckpt", model=model,
                    trainer=trainer, out_dir=folder / source.name, seed=seed)
            acc = accuracy(model, source.X_test, source.y_test)
            log.info("Pre-trained on %s (%d items, %d epochs): %.2f%% source test accuracy (%.0f s)",
                     source.name, len(y_pre), task.pretrain_epochs, acc, time.perf_counter() - start)
            self.pretrained[source.name] = (model.eval(), acc)
            self.pretrain_sizes[source.name] = len(y_pre)
            self.pretrain_seconds[source.name] = round(time.perf_counter() - start, 1)  # ~0 when read back
        return self.pretrained[source.name]

    def one_seed(self, pretrained: Classifier, target: Dataset, seed: int) -> dict:
        """Fine-tuned and from-scratch target test accuracies on one seeded target sample (the
        from-scratch model trained once per target and seed, whatever the source)."""
        task = self.task
        keep = sample(target.y, task.n_finetune, seed)
        X, y = target.X[keep], target.y[keep]
        budget = dict(epochs=task.finetune_epochs, batch_size=task.finetune_batch_size,
                      trainer=self.cfg.trainer, root=self.out / "finetune", seed=seed)
        key = (target.name, len(target.y), seed)  # the same for every source of this target
        if key not in self.scratch:
            L.seed_everything(seed, workers=True)
            scratch = fit(build(self.model_cfg, target.num_classes, X, target.image_size), X, y, **budget)
            self.scratch[key] = accuracy(scratch, target.X_test, target.y_test)
        L.seed_everything(seed, workers=True)
        tuned = build(self.model_cfg, target.num_classes, X, target.image_size)
        fresh = transfer_weights(pretrained, tuned, head=task.head)
        frozen = [str(f) for f in task.get("freeze") or []]
        for name, param in tuned.named_parameters():
            if any(name.startswith(prefix) for prefix in frozen):
                param.requires_grad_(False)
        fit(tuned, X, y, **budget)
        scratch_acc = self.scratch[key]
        tuned_acc = accuracy(tuned, target.X_test, target.y_test)
        return {"seed": seed, "n_finetune": len(y), "scratch_acc": scratch_acc,
                "finetune_acc": tuned_acc, "gain": tuned_acc - scratch_acc,
                "error_drop": error_drop(scratch_acc, tuned_acc),
                "head": "replaced" if any(k.startswith("net.classifier.") for k in fresh) else "kept"}

    def cached_seed(self, pretrained: Classifier, source: Dataset, target: Dataset, seed: int) -> dict:
        """`one_seed`, read back from `task.cache_dir` when a run with the same training settings did
        it: the accuracies do not depend on the distances, so a rerun that changes only a distance
        (or a sweep job that repeats a pair) recomputes nothing but the distances."""
        path = None
        if self.cache is not None:
            task = OmegaConf.to_container(self.task, resolve=True)
            keys = ("n_pool", "n_test", "n_pretrain", "pretrain_epochs", "pretrain_batch_size", "n_finetune",
                    "finetune_epochs", "finetune_batch_size", "head", "freeze")
            trainer = {k: v for k, v in config_dict(self.cfg.trainer).items() if k != "default_root_dir"}
            path = self.cache / "runs" / (_digest(
                config_dict(self.model_cfg), source.origin, len(source.y), target.origin, len(target.y),
                len(target.y_test), {k: task.get(k) for k in keys}, trainer, self.cfg.seed, seed) + ".json")
            if path.exists():
                return json.loads(path.read_text())
        result = self.one_seed(pretrained, target, seed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result))
        return result

    def pair(self, source: Dataset, target: Dataset) -> tuple[dict, list[dict]]:
        start = time.perf_counter()
        if source.X.shape[1] != target.X.shape[1]:
            raise ValueError(f"{source.name} has {source.X.shape[1]} features and {target.name} "
                             f"{target.X.shape[1]}: they need the same input space.")
        key = frozenset((source.name, target.name))
        pretrained, source_acc = self.pretrain(source)
        runs = [{"pair": f"{source.name}→{target.name}", "source": source.name, "target": target.name,
                 **self.cached_seed(pretrained, source, target, int(seed))} for seed in seeds(self.task)]
        meta = {"source_acc": source_acc, "n_pretrain": self.pretrain_sizes[source.name],
                "pretrain_seconds": self.pretrain_seconds[source.name],
                "n_test": len(target.y_test), "seconds": round(time.perf_counter() - start, 1),
                **{name: table[key] for name, table in self.distances.items() if key in table}}
        row = summarize_pair(source.name, target.name, runs, meta)
        log.info("%s: OTDD %.4g, scratch %.2f%%, fine-tuned %.2f%%, gain %+.2f ± %.2f",
                 row["pair"], row["otdd"], row["scratch_acc"], row["finetune_acc"], row["gain"],
                 row["gain_std"])
        return row, runs


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
    """Every pair in turn; the results appear in the run folder together, once all are written, and
    a run that fails keeps the pairs it finished in `partial/` (:func:`otdata.tasks.rundir.run_folder`)."""
    with task_threads(cfg), run_folder(cfg.paths.output_dir, keep_partial=True) as stage:
        return _run(cfg, stage)


def _run(cfg: DictConfig, out: Path) -> dict:
    if cfg.task.get("collect"):
        return collect(cfg, Path(cfg.task.collect), out)
    started = time.perf_counter()
    pairs = resolve_pairs(cfg.task)
    if cfg.task.get("pair_index") is not None:
        pairs = [pairs[int(cfg.task.pair_index)]]
    load, experiment = Loader(cfg), Experiment(cfg, out)
    available = {}
    for name in dict.fromkeys(n for pair in pairs for n in pair):
        try:
            available[name] = load(name)
        except DataFileError:
            if cfg.task.strict:
                raise
    if cfg.task.get("distances", "matrix") not in ("matrix", "pairs"):
        raise ValueError(f"task.distances={cfg.task.distances!r}: use matrix (every pair among the datasets) "
                         "or pairs (only the pairs of task.pairs)")
    needed = None if cfg.task.get("distances", "matrix") == "matrix" else {
        frozenset((available[a].name, available[b].name)) for a, b in pairs if a in available and b in available}
    for dim in sorted({d.X.shape[1] for d in available.values()}):  # one input space at a time
        group = {d.name: d for d in available.values() if d.X.shape[1] == dim}
        if len(group) > 1:
            experiment.compute_distances(group, load, needed)
    rows: list[dict] = []
    runs: list[dict] = []
    bar = progress.Tracker("transfer pairs", len(pairs), "pair")  # a line per pair off a terminal
    for source_name, target_name in pairs:
        try:
            source, target = load(source_name), load(target_name)
        except DataFileError as error:
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
        write_table(rows, out / "transferability", columns(experiment.distances))  # nothing lost later
        bar.advance(status=f"{source_name} → {target_name}")
    bar.close()
    datasets = {name: (d.origin if isinstance(d, Dataset) else f"skipped: {d.files[0]}")
                for name, d in load.loaded.items()}
    settings = {
        "task": OmegaConf.to_container(cfg.task, resolve=True),
        "model": config_dict(experiment.model_cfg),
        "distance": OmegaConf.to_container(cfg.distance, resolve=True),
        "trainer": {k: v for k, v in config_dict(cfg.trainer).items() if k != "default_root_dir"},
        "seed": cfg.seed,
    }
    return finish(out, rows, runs, experiment.timings, datasets, settings, time.perf_counter() - started,
                  str(cfg.task.outcome))
