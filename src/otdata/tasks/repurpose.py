"""`experiment=repurpose`: one frozen MNIST classifier for every *NIST dataset, by flowing them.

For each source dataset (USPS, KMNIST, FashionMNIST, EMNIST by default):
  1. score the frozen target classifier on the raw source data;
  2. flow a labeled sample of the source toward the target (MNIST) and score the flowed particles;
  3. move unseen source *test* samples (no labels used) into the target's domain and score them:
     with the learned map (a network fitted to the flow's (start, end) pairs, see
     :mod:`otdata.flows.learned_map`) and with the k-nearest-neighbour displacement extension;
  4. the honest baseline: the same network architecture as the frozen classifier, trained from
     scratch on the same labeled source sample the flow used, scored on the same unseen samples.

Two protocols for "right":
  * identity — source label index c counts as right when the classifier says c, and the flow pushes
    source class c onto target class c (the paper's table, Alvarez-Melis & Fusi 2021);
  * correspondence — classes are matched from data first (label distances between source and target
    classes, balanced assignment when there are more source classes, e.g. 26 letters → 10 digits), the
    flow pushes each class onto its match, and the classifier is right when it says the match.

Writes `repurpose.csv` (every number, one row per dataset plus the target's own test accuracy),
`repurpose.md` (the paper's protocol, printed at the end of the run), `repurpose_correspondence.md`,
`repurpose.json`, and per dataset a before/after image grid per protocol, all at once when every
file is complete (`UNFINISHED` marks a run that did not get there; one that failed keeps the
datasets it finished in `partial/`).
"""

from __future__ import annotations

import json
import logging
import resource
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from otdata.instantiate import safe_instantiate as instantiate
from omegaconf import DictConfig, OmegaConf

from otdata import plots, progress
from otdata.console import duration
from otdata.data import DataFileError
from otdata.flows import FlowResult, match_classes
from otdata.flows.learned_map import LearnedMap
from otdata.models import build_classifier
from otdata.models.progress import PhaseProgressBar
from otdata.tables import to_markdown, write_table
from otdata.tasks.common import close_loggers, instantiate_loggers, source_config
from otdata.tasks.classifier import frozen_classifier
from otdata.tasks.rundir import run_folder
from otdata.tasks.scoring import accuracy, mapped

log = logging.getLogger(__name__)

#: The paper's table (Alvarez-Melis & Fusi, ICML 2021): accuracy before → after flowing to MNIST.
PAPER = {
    "MNIST": (99.5, None), "USPS": (77.1, 99.1), "KMNIST": (5.05, 99.2),
    "FashionMNIST": (8.22, 99.1), "EMNIST": (3.62, 36.7),
}
PROTOCOLS = ("identity", "correspondence")
#: The from-scratch baseline's column per protocol (the first is the source's own classes).
BASELINE = {"identity": "baseline_from_scratch", "correspondence": "baseline_from_scratch_correspondence"}

def discover_correspondence(cfg, Xs, ys, Xt, yt) -> dict[int, int]:
    """Match source classes to target classes from the OTDD label distances on raw data."""
    distance = instantiate(cfg.distance)
    W = distance.label_distances(distance.prepare(Xs, ys), distance.prepare(Xt, yt))
    return match_classes(W, torch.unique(ys), torch.unique(yt), method=cfg.task.match)


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far, in GB (Linux reports kB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)


def train_from_scratch(cfg, X: torch.Tensor, y: torch.Tensor, num_classes: int,
                       image_shape: tuple[int, int, int]):
    """The baseline: `cfg.model` (the frozen classifier's architecture) trained from scratch on the
    labeled source sample `(X, y)` with the `task.baseline` recipe (fixed epochs, no early stop)."""
    recipe = cfg.task.baseline
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    model = build_classifier(cfg.model, num_classes=num_classes, image_size=image_shape[-1])
    loader = DataLoader(TensorDataset(X.reshape(-1, *image_shape), y), shuffle=True,
                        batch_size=int(recipe.batch_size))
    with warnings.catch_warnings():  # no validation split on purpose: the fixed recipe has no early stop
        warnings.filterwarnings("ignore", message=".*`val_dataloader`")
        L.Trainer(max_epochs=int(recipe.epochs), accelerator="cpu", devices=1, logger=False,
                  enable_checkpointing=False, enable_model_summary=False,
                  callbacks=[PhaseProgressBar("baseline")]).fit(model, loader)
    return model.eval().requires_grad_(False)


def fit_learned_map(cfg, result: FlowResult, classifier, image_shape) -> LearnedMap:
    """`task.learned_map` fitted to a flow's pairs (X0 → X), with the frozen classifier as teacher."""
    settings = OmegaConf.to_container(cfg.task.learned_map, resolve=True)
    return LearnedMap(image_shape=image_shape, seed=int(cfg.seed), **settings).fit(
        result.X0, result.X, teacher=classifier)


def before_after_grid(images: dict, ys, yq, corr: dict, protocol: str, source, target_dm, classifier,
                      path: Path) -> None:
    """The before/after image rows of one protocol: each image captioned with its class (under the
    correspondence protocol, `class → the digit it should read as`) and the frozen model's answer,
    green where the model is right and red where not."""
    shown = 12  # image_rows' default per row
    captions, colors = {}, {}
    for name, X in images.items():
        labels = (ys if name in ("source", "flowed") else yq)[:shown]
        said, want = classifier.predict(X[:shown]), mapped(labels, corr)
        captions[name] = plots.class_captions(labels, source.class_names, said, target_dm.class_names,
                                              expected=want if protocol == "correspondence" else None)
        colors[name] = plots.agreement_colors(said, want)
    plots.image_rows(images, path, image_shape=(1, source.image_size, source.image_size),
                     captions=captions, caption_colors=colors,
                     title=f"{source.name} → {target_dm.name} ({protocol} protocol; green: the frozen "
                           "model says the expected class, red: it does not)")


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
    learned = cfg.task.extension == "learned"
    unknown = set(cfg.task.get("protocols") or PROTOCOLS) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"task.protocols: unknown {sorted(unknown)}; use {list(PROTOCOLS)}")
    if cfg.task.extension not in ("learned", "knn"):
        raise ValueError(f"task.extension must be 'learned' or 'knn', got {cfg.task.extension!r}")

    row = {"dataset": source.name, "n_flow": len(ys), "n_test": len(yq)}
    seconds = {"flow": 0.0, "map": 0.0}
    log.info("%s: training the from-scratch baseline on the %d labeled particles", source.name, len(ys))
    tick = time.perf_counter()
    baseline_pred = train_from_scratch(cfg, Xs, ys, len(source.class_names), image_shape).predict(Xq)
    seconds["baseline"] = time.perf_counter() - tick
    raw_pred = classifier.predict(Xs)
    folder = out / source.name
    flows: dict[tuple, tuple] = {}  # one flow (and one learned map) per distinct correspondence
    for protocol in cfg.task.get("protocols") or PROTOCOLS:
        corr = targets[protocol]
        key = tuple(sorted(flow_targets[protocol].items()))
        if key not in flows:
            flow = instantiate(cfg.flow, correspondence=flow_targets[protocol],
                               checkpoint_dir=str(folder / protocol / "checkpoints"))
            log.info("%s: flowing %d particles toward %s (%s protocol)", source.name, len(ys),
                     target_dm.name, protocol)
            tick = time.perf_counter()
            result = flow.run(Xs, ys, target=(Xt, yt))
            seconds["flow"] += time.perf_counter() - tick
            tick = time.perf_counter()
            lm = None
            if learned:
                log.info("%s: fitting the learned out-of-sample map to the flow's %d pairs",
                         source.name, len(ys))
                lm = fit_learned_map(cfg, result, classifier, image_shape)
            seconds["map"] += time.perf_counter() - tick
            flows[key] = (result, lm)
        result, lm = flows[key]
        result.save(folder / protocol / "flow.pt")
        knn = result.extend(Xq, k=cfg.task.extension_k)
        moved = lm(Xq, clamp=tuple(cfg.flow.clamp) if cfg.flow.clamp else None) if learned else knn
        row[f"raw_{protocol}"] = accuracy(raw_pred, mapped(ys, corr))
        row[f"flowed_{protocol}"] = accuracy(classifier.predict(result.X), mapped(ys, corr))
        row[f"raw_test_{protocol}"] = accuracy(classifier.predict(Xq), mapped(yq, corr))
        row[f"out_of_sample_{protocol}"] = accuracy(classifier.predict(moved), mapped(yq, corr))
        row[f"out_of_sample_knn_{protocol}"] = accuracy(classifier.predict(knn), mapped(yq, corr))
        row[BASELINE[protocol]] = accuracy(mapped(baseline_pred, corr), mapped(yq, corr))
        images = {"source": result.X0, "flowed": result.X, "test": Xq, "test (k-NN)": knn}
        if learned:
            images["test (learned map)"] = moved
        before_after_grid(images, ys, yq, corr, protocol, source, target_dm, classifier,
                          folder / f"before_after_{protocol}.png")
    paper_before, paper_after = PAPER.get(source.name, (None, None))
    row.update(paper_before=paper_before, paper_after=paper_after,
               correspondence=" ".join(f"{source.class_names[c]}→{t}" for c, t in found.items()),
               **{f"{k}_seconds": v for k, v in seconds.items()},
               seconds=time.perf_counter() - start, peak_memory_gb=peak_memory_gb())
    for protocol in cfg.task.get("protocols") or PROTOCOLS:
        log.info("%s (%s protocol): flowed %.2f%%, out-of-sample %.2f%% (k-NN %.2f%%), from scratch "
                 "%.2f%%", source.name, protocol, row[f"flowed_{protocol}"],
                 row[f"out_of_sample_{protocol}"], row[f"out_of_sample_knn_{protocol}"],
                 row[BASELINE[protocol]])
    return row


IDENTITY_COLUMNS = {
    "dataset": "dataset", "paper_before": "paper: before", "paper_after": "paper: after",
    "raw_identity": "raw", "flowed_identity": "flowed", "raw_test_identity": "raw (test)",
    "out_of_sample_identity": "out-of-sample", "out_of_sample_knn_identity": "out-of-sample (k-NN)",
    "baseline_from_scratch": "from scratch", "n_flow": "n flowed", "n_test": "n test",
    "seconds": "seconds", "status": "status",
}
CORRESPONDENCE_COLUMNS = {
    "dataset": "dataset", "raw_correspondence": "raw", "flowed_correspondence": "flowed",
    "raw_test_correspondence": "raw (test)", "out_of_sample_correspondence": "out-of-sample",
    "out_of_sample_knn_correspondence": "out-of-sample (k-NN)",
    "baseline_from_scratch_correspondence": "from scratch", "correspondence": "matching",
}
NOTES = {
    "identity": (
        "Accuracy (%) of the frozen {target} classifier under the paper's protocol (source class c "
        "is right when the model says c). flowed: the labeled particles after the flow; "
        "out-of-sample: unseen test samples moved by the {extension} (k-NN: by their nearest "
        "particle's displacement); from scratch: the classifier's architecture trained on the same "
        "labeled sample, on the same test samples (the source's own classes)."),
    "correspondence": (
        "Accuracy (%) of the frozen {target} classifier when each source class is matched to a "
        "target class from the data first (matching column); not comparable with the paper's table."),
}


def rounded(rows: list[dict]) -> list[dict]:
    """The rows with every float rounded to two decimals (as committed records keep them)."""
    return [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def write_tables(cfg, rows: list[dict], out: Path) -> None:
    """`repurpose.csv` (every column), `repurpose.md` (the paper's protocol) and
    `repurpose_correspondence.md`, numbers rounded to two decimals."""
    rows = rounded(rows)
    write_table(rows, out / "repurpose")
    extension = "learned map" if cfg.task.extension == "learned" else "k-NN displacement"
    target = rows[0]["dataset"] if rows else "target"
    for protocol, columns, stem in (("identity", IDENTITY_COLUMNS, "repurpose"),
                                    ("correspondence", CORRESPONDENCE_COLUMNS,
                                     "repurpose_correspondence")):
        present = [c for c in columns if any(c in r for r in rows)]
        shown = rows if protocol == "identity" else rows[1:]
        text = to_markdown(shown, present, headers=columns,
                           notes=NOTES[protocol].format(target=target, extension=extension))
        (out / f"{stem}.md").write_text(text)


def log_results(cfg, rows: list[dict], out: Path) -> None:
    """Send the table (and, for W&B, the figures) to the configured loggers."""
    loggers = instantiate_loggers(cfg)
    for logger in loggers:
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
    close_loggers(loggers)


def run(cfg: DictConfig) -> dict:
    """Every source dataset in turn; the results appear in the run folder together, once all are
    written, and a run that fails keeps the datasets it finished in `partial/`
    (:func:`otdata.tasks.rundir.run_folder`)."""
    with run_folder(cfg.paths.output_dir, keep_partial=True) as stage:
        return _run(cfg, stage)


def _run(cfg: DictConfig, out: Path) -> dict:
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
    names = [sources] if isinstance(sources, str) else list(sources)
    started = time.perf_counter()
    for i, name in enumerate(names, 1):
        try:
            with progress.stage(f"{name}: {i} of {len(names)} datasets"):
                rows.append(repurpose_one(cfg, name, classifier, target_dm, Xt, yt, out))
        except DataFileError as error:
            if cfg.task.strict:
                raise
            log.warning("Skipping %s: %s", name, error)
            rows.append({"dataset": name, "status": f"skipped: data files missing ({error.files[0]})"})
        write_tables(cfg, rows, out)  # after every dataset: kept in `partial/` on a later failure
        if i < len(names):
            left = (time.perf_counter() - started) / i * (len(names) - i)
            log.info("%d of %d datasets done; about %s left for the other %d", i, len(names),
                     duration(left), len(names) - i)

    (out / "repurpose.json").write_text(json.dumps(
        {"rows": rounded(rows), "classifier": str(checkpoint), "seed": cfg.seed,
         "flow": OmegaConf.to_container(cfg.flow, resolve=True)}, indent=2))
    log_results(cfg, rows, out)
    log.info("Results: %s", Path(cfg.paths.output_dir) / "repurpose.md")
    done = [r for r in rows[1:] if "flowed_identity" in r]
    mean = sum(r["flowed_identity"] for r in done) / len(done) if done else float("nan")
    return {"rows": rows, "objective": mean}
