"""The records of `experiment=transferability`: its tables, statistics, figures and JSON record
(:func:`finish`), and the merge of a sweep's job records into one (:func:`collect`)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from omegaconf import DictConfig

from otdata import plots
from otdata.correlation import correlate, describe, pair_variance
from otdata.tables import write_table
from otdata.tasks.rundir import is_staged
from otdata.transfer_stats import (OUTCOMES, PAPER_SPEARMAN, STAT_COLUMNS, pair_statistics, rounded,
                                   summarize_pair)

log = logging.getLogger(__name__)


def columns(distances) -> list[str]:
    extra = [k for k in distances if k != "otdd"]
    return (["pair", "source", "target", "otdd", *extra, "gain", "gain_std", "error_drop", "error_drop_std",
             "scratch_acc", "finetune_acc", "source_acc", "head", "n_pretrain", "n_finetune", "n_test",
             "seeds", "seconds", "status"])


def finish(out: Path, rows, runs, timings, datasets, settings, seconds, outcome) -> dict:
    """Statistics, tables, figures and the JSON record of a run (or of collected runs)."""
    write_table(rows, out / "transferability", columns(timings or {"otdd": None}))
    stats = pair_statistics(rows, runs, list(timings or ["otdd"]))
    for s in stats:
        s["seconds_per_pair"] = (timings.get(s["distance"]) or {}).get("seconds_per_pair")
    write_table([rounded(s) for s in stats], out / "correlations", STAT_COLUMNS)
    main = next((s for s in stats if s["distance"] == "otdd" and s["outcome"] == outcome), None)
    done = [r for r in rows if r.get("status") == "ok"]
    correlation = correlate([r["otdd"] for r in done], [r[outcome] for r in done])
    log.info("OTDD vs %s over %d pairs: %s", outcome, len(done), describe(correlation))
    if main is not None and "spearman_perm_p" in main:
        log.info("dataset-permutation p: Pearson %.3f, Spearman %.3f (%d relabellings)",
                 main["pearson_perm_p"], main["spearman_perm_p"], main["n_permutations"])
    plots.transfer_figures(rows, stats, out, outcome)
    variance = {o: pair_variance([(r["source"], r["target"]) for r in done], [r[o] for r in done])
                for o in OUTCOMES} if done else {}
    for o, v in variance.items():
        log.info("%s variance: source %.2f, target %.2f, source + target %.2f, direction (antisymmetric) %.2f",
                 o, v["source"], v["target"], v["additive"], v["antisymmetric"])
    record = {"rows": rows, "runs": runs, "correlation": correlation, "outcome": outcome,
              "statistics": stats, "variance": variance, "timings": timings, "paper_spearman": PAPER_SPEARMAN,
              "datasets": datasets, "seconds": seconds, "settings": settings}
    (out / "transferability.json").write_text(json.dumps(record, indent=2, default=str))
    log.info("Results (%.0f s): %s", seconds, out.parent / "transferability.md")
    rho = correlation["spearman_rho"]
    return {"rows": rows, "correlation": correlation, "statistics": stats, "seconds": seconds,
            "objective": rho if math.isfinite(rho) else None}


def job_records(folder: Path, own: Path) -> list[Path]:
    """The `transferability.json` of each finished job under `folder`: not this run's own (`own`),
    nor one staged by an unfinished run (:func:`otdata.tasks.rundir.is_staged`)."""
    return [p for p in sorted(folder.rglob("transferability.json"))
            if own.resolve() not in p.resolve().parents and not is_staged(p, folder)]


def collect(cfg: DictConfig, folder: Path, out: Path) -> dict:
    """Merge the records of a sweep's jobs (one pair or one seed each) into one record."""
    found = job_records(folder, Path(cfg.paths.output_dir))
    records = [json.loads(p.read_text()) for p in found]
    if not records:
        raise FileNotFoundError(f"no transferability.json under {folder}")
    runs, meta, timings, datasets = {}, {}, {}, {}
    for rec in records:
        for r in rec["runs"]:
            runs[(r["pair"], r["seed"])] = r
        for row in rec["rows"]:
            if row.get("status") == "ok":
                keep = {k: v for k, v in row.items() if k in ("source_acc", "n_pretrain", "n_test", "seconds")
                        or k == "otdd" or k in rec.get("timings", {})}
                meta.setdefault(row["pair"], {}).update(keep)
        timings.update(rec.get("timings", {}))
        datasets.update(rec.get("datasets", {}))
    rows = []
    for pair, m in meta.items():
        pair_runs = sorted((r for (p, _), r in runs.items() if p == pair), key=lambda r: r["seed"])
        rows.append(summarize_pair(pair_runs[0]["source"], pair_runs[0]["target"], pair_runs, m))
    return finish(out, rows, sorted(runs.values(), key=lambda r: (r["pair"], r["seed"])), timings, datasets,
                  {"collected_from": [str(p.relative_to(folder)) for p in found],
                   **records[0]["settings"]}, sum(r["seconds"] for r in records), str(cfg.task.outcome))
