"""`experiment=repurpose`: one frozen MNIST classifier for every *NIST dataset, by flowing them.

For each source dataset (USPS, KMNIST, FashionMNIST, EMNIST by default):
  1. score the frozen target classifier on the raw source data;
  2. flow a labeled sample of the source toward the target (MNIST) and score the flowed particles;
  3. move unseen source *test* samples (no labels used) with the learned flow's displacement field
     (k-nearest-neighbour out-of-sample extension) and score them.

Two protocols for "right":
  * identity — source label index c counts as right when the classifier says c, and the flow pushes
    source class c onto target class c (the paper's table, Alvarez-Melis & Fusi 2021);
  * correspondence — classes are matched from data first (label distances between source and target
    classes, balanced assignment when there are more source classes, e.g. 26 letters → 10 digits), the
    flow pushes each class onto its match, and the classifier is right when it says the match.

Writes `repurpose.csv` / `repurpose.md` (one row per dataset, plus the target's own test accuracy),
`repurpose.json`, and per dataset a before/after image grid and the flow's objective curve.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch
from otdata.instantiate import safe_instantiate as instantiate
from omegaconf import DictConfig, OmegaConf

from otdata import plots
from otdata.data import DataFileError
from otdata.flows import FlowResult, match_classes
from otdata.tables import write_table
from otdata.tasks.common import instantiate_loggers, source_config
from otdata.models import load_or_train_classifier

log = logging.getLogger(__name__)

#: The paper's table (Alvarez-Melis & Fusi, ICML 2021): accuracy before → after flowing to MNIST.
PAPER = {
    "MNIST": (99.5, None), "USPS": (77.1, 99.1), "KMNIST": (5.05, 99.2),
    "FashionMNIST": (8.22, 99.1), "EMNIST": (3.62, 36.7),
}
PROTOCOLS = ("identity", "correspondence")
#: Trainer keys that do not change the trained classifier (left out of its cache key).
NOT_SHAPING = ("default_root_dir", "enable_progress_bar", "enable_model_summary", "log_every_n_steps",
               "logger", "callbacks")


def accuracy(predicted: torch.Tensor, expected: torch.Tensor) -> float:
    return 100.0 * float((predicted == expected).float().mean())


def mapped(y: torch.Tensor, correspondence: dict[int, int]) -> torch.Tensor:
    """Labels sent through a correspondence; classes it does not cover become -1 (never right)."""
    return torch.tensor([correspondence.get(int(c), -1) for c in y], dtype=torch.long)


def discover_correspondence(cfg, Xs, ys, Xt, yt) -> dict[int, int]:
    """Match source classes to target classes from the OTDD label distances on raw data."""
    distance = instantiate(cfg.distance)
    W = distance.label_distances(distance.prepare(Xs, ys), distance.prepare(Xt, yt))
    return match_classes(W, torch.unique(ys), torch.unique(yt), method=cfg.task.match)


def repurpose_one(cfg, name: str, classifier, target_dm, Xt, yt, out: Path) -> dict:
    """All numbers for one source dataset (see the module docstring)."""
    start = time.perf_counter()
    source = instantiate(source_config(cfg, name).source)
    Xs, ys = source.tensors("train", max_samples=cfg.task.n_flow, flatten=True)
    Xq, yq = source.tensors("test", max_samples=cfg.task.n_test, flatten=True)
    image_shape = (1, source.image_size, source.image_size)
    found = discover_correspondence(cfg, Xs, ys, Xt, yt)
    targets = {"identity": {int(c): int(c) for c in torch.unique(ys)}, "correspondence": found}
    target_classes = set(yt.tolist())
    # Under the identity protocol a source class the target lacks (EMNIST letters k..z) can never be
    # right; its particles still have to flow somewhere: to the class the data matched them to.
    flow_targets = {
        "identity": {c: c if c in target_classes else found[c] for c in targets["identity"]},
        "correspondence": found,
    }

    row = {"dataset": source.name, "n_flow": len(ys), "n_test": len(yq)}
    raw_pred = classifier.predict(Xs)
    folder = out / source.name
    flows: dict[tuple, FlowResult] = {}  # one flow per distinct correspondence
    for protocol in PROTOCOLS:
        corr = targets[protocol]
        key = tuple(sorted(flow_targets[protocol].items()))
        if key not in flows:
            flow = instantiate(cfg.flow, correspondence=flow_targets[protocol],
                               checkpoint_dir=str(folder / protocol / "checkpoints"))
            log.info("%s: flowing %d particles toward %s (%s protocol)", source.name, len(ys),
                     target_dm.name, protocol)
            flows[key] = flow.run(Xs, ys, target=(Xt, yt))
        result = flows[key]
        result.save(folder / protocol / "flow.pt")
        moved = result.extend(Xq, k=cfg.task.extension_k)
        row[f"raw_{protocol}"] = accuracy(raw_pred, mapped(ys, corr))
        row[f"flowed_{protocol}"] = accuracy(classifier.predict(result.X), mapped(ys, corr))
        row[f"raw_test_{protocol}"] = accuracy(classifier.predict(Xq), mapped(yq, corr))
        row[f"out_of_sample_{protocol}"] = accuracy(classifier.predict(moved), mapped(yq, corr))
        plots.image_rows(
            {"source": result.X0, "flowed": result.X, "test": Xq, "test moved": moved},
            folder / f"before_after_{protocol}.png", image_shape=image_shape,
            title=f"{source.name} → {target_dm.name} ({protocol} protocol)",
        )
    paper_before, paper_after = PAPER.get(source.name, (None, None))
    row.update(paper_before=paper_before, paper_after=paper_after,
               correspondence=" ".join(f"{source.class_names[c]}→{t}" for c, t in found.items()),
               seconds=round(time.perf_counter() - start, 1))
    return row


def classifier_seed(cfg) -> int:
    """The frozen classifier's seed: `task.classifier_seed`, or the run's seed when that is null."""
    seed = cfg.task.get("classifier_seed")
    return int(cfg.seed if seed is None else seed)


def classifier_checkpoint(cfg) -> Path:
    """`task.classifier_ckpt`, or a cache path keyed by everything that shapes the classifier."""
    if cfg.task.classifier_ckpt:
        return Path(cfg.task.classifier_ckpt)
    recipe = OmegaConf.to_container(cfg, resolve=True)
    shaping = {key: recipe[key] for key in ("model", "trainer")}
    shaping["seed"] = classifier_seed(cfg)
    shaping["target"] = {k: v for k, v in recipe["target"].items()
                         if k not in ("data_dir", "num_workers", "download")}
    shaping["target"]["seed"] = classifier_seed(cfg)
    for key in NOT_SHAPING:  # display and bookkeeping only: the same classifier either way
        shaping["trainer"].pop(key, None)
    key = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cfg.paths.cache_dir) / "classifiers" / f"{cfg.target._target_.split('.')[-1]}-{key}.ckpt"


def frozen_classifier(cfg):
    """The target's classifier: loaded from `task.classifier_ckpt` or the cache, else trained (and
    cached), with log lines that say which and how long it took."""
    checkpoint = classifier_checkpoint(cfg)
    seed = classifier_seed(cfg)
    if checkpoint.is_file():
        return load_or_train_classifier(None, checkpoint)
    log.info("No cached %s classifier at %s: training one now (model=%s, %s epochs, seed %d; "
             "about 5 min on 2 idle CPU cores). Later runs load it from the cache; "
             "task.classifier_ckpt=<file> uses another.",
             cfg.target._target_.split(".")[-1].removesuffix("DataModule"), checkpoint,
             cfg.model.net._target_.split(".")[-1], cfg.trainer.get("max_epochs"), seed)
    start = time.perf_counter()
    train_dm = instantiate(cfg.target, seed=seed)
    classifier, checkpoint = load_or_train_classifier(
        train_dm, checkpoint, model=cfg.model, trainer=cfg.trainer, seed=seed)
    log.info("Trained the classifier in %.0f s → %s", time.perf_counter() - start, checkpoint)
    return classifier, checkpoint


def log_results(cfg, rows: list[dict], out: Path) -> None:
    """Send the table (and, for W&B, the figures) to the configured loggers."""
    for logger in instantiate_loggers(cfg):
        metrics = {f"{r['dataset']}/{k}": v for r in rows for k, v in r.items()
                   if isinstance(v, (int, float)) and v is not None}
        logger.log_metrics(metrics)
        if hasattr(logger, "log_table"):  # Weights & Biases
            columns = list(dict.fromkeys(k for r in rows for k in r))
            logger.log_table("repurpose", columns=columns,
                             data=[[r.get(c) for c in columns] for r in rows])
            images = sorted(str(p) for p in out.glob("*/before_after_*.png"))
            if images:
                logger.log_image("before_after", images=images)
        logger.finalize("success")


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    target_dm = instantiate(cfg.target)
    classifier, checkpoint = frozen_classifier(cfg)
    classifier.eval().requires_grad_(False)
    Xt, yt = target_dm.tensors("train", max_samples=cfg.task.n_target, flatten=True)
    Xtest, ytest = target_dm.tensors("test", flatten=True)
    rows = [{"dataset": target_dm.name, "n_test": len(ytest),
             "raw_identity": accuracy(classifier.predict(Xtest), ytest),
             "paper_before": PAPER.get(target_dm.name, (None, None))[0]}]
    log.info("%s test accuracy of the frozen classifier: %.2f%% (%s)", target_dm.name,
             rows[0]["raw_identity"], checkpoint)

    sources = cfg.task.sources
    for name in [sources] if isinstance(sources, str) else list(sources):
        try:
            rows.append(repurpose_one(cfg, name, classifier, target_dm, Xt, yt, out))
        except DataFileError as error:
            if cfg.task.strict:
                raise
            log.warning("Skipping %s: %s", name, error)
            rows.append({"dataset": name, "status": f"skipped: data files missing ({error.files[0]})"})
        write_table(rows, out / "repurpose")  # after every dataset: nothing lost on a later failure

    (out / "repurpose.json").write_text(json.dumps(
        {"rows": rows, "classifier": str(checkpoint), "seed": cfg.seed,
         "flow": OmegaConf.to_container(cfg.flow, resolve=True)}, indent=2))
    log_results(cfg, rows, out)
    log.info("Results: %s", out / "repurpose.md")
    done = [r for r in rows[1:] if "flowed_identity" in r]
    mean = sum(r["flowed_identity"] for r in done) / len(done) if done else float("nan")
    return {"rows": rows, "objective": mean}
