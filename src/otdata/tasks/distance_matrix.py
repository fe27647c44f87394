"""`task=distance_matrix`: the OTDD between every pair of several datasets, one table and heat map.

    otdata task=distance_matrix task.datasets=[usps,mnist,kmnist,fashion_mnist]
    otdata task=distance_matrix task.datasets=[...] task.submit=true hydra/launcher=slurm_cpu

Each unordered pair's result is stored in the distance cache (`task.cache_dir`, written atomically
by :func:`otdata.distance.distance_matrix`). With `task.submit=true` every pair missing from the
cache becomes one job of a SLURM array (or a local process, `hydra/launcher=local`), with the
launcher's sizes, request check, job ids, bounded wait and Ctrl-C cancelling; the command then
gathers the cached pairs. Running the same command again after a crash or a cancel submits only
the pairs still missing. Writes into the run folder:

  distance_matrix.csv / .md   one row per dataset, one column per dataset (OTDD, 0 on the diagonal)
  distance_matrix.png         the same as an annotated heat map
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from otdata import plots
from otdata.distance.matrix import distance_matrix, missing_pairs
from otdata.instantiate import safe_instantiate as instantiate
from otdata.tables import write_table
from otdata.tasks.common import source_config
from otdata.tasks.rundir import run_folder

log = logging.getLogger(__name__)

#: hydra/launcher targets that can run the pair jobs, and the submitit executor of each.
EXECUTORS = {"OtdataSlurmLauncher": "slurm", "OtdataLocalLauncher": "local"}


def run(cfg: DictConfig) -> dict:
    """Compute (or submit, then gather) every pair and write the matrix (see the module doc)."""
    with run_folder(cfg.paths.output_dir) as stage:
        return _run(cfg, stage)


def load(cfg: DictConfig) -> dict[str, tuple]:
    """`{display name: (X, y)}` for `task.datasets`, each a stratified sample of `task.n` items."""
    data = {}
    for name in cfg.task.datasets:
        module = instantiate(source_config(cfg, str(name)).source)
        data[module.name] = module.tensors(cfg.task.split, max_samples=cfg.task.n, flatten=True)
    return data


def compute_pair(a: str, data_a: tuple, b: str, data_b: tuple, distance: dict, cache_dir: str) -> float:
    """One pair's OTDD into the cache (the job of one pair); returns the value."""
    matrix = distance_matrix({a: data_a, b: data_b}, instantiate(OmegaConf.create(distance)),
                             cache_dir=cache_dir)
    return float(matrix.values[0, 1])


def _run(cfg: DictConfig, out: Path) -> dict:
    data = load(cfg)
    if len(data) < 2:
        raise ValueError(f"task.datasets needs at least two datasets, got {list(data)}.")
    dd = instantiate(cfg.distance)
    total = len(data) * (len(data) - 1) // 2
    cache = None if cfg.task.cache_dir is None else Path(cfg.task.cache_dir)
    if cache is None and cfg.task.submit:
        raise ValueError("task.submit=true needs task.cache_dir: the pair jobs hand their results "
                         "over through it.")
    missing = missing_pairs(data, dd, cache) if cache is not None else []
    if cache is not None:
        log.info("%d datasets, %d pairs: %d in the cache %s, %d to compute", len(data), total,
                 total - len(missing), cache, len(missing))
    if missing and cfg.task.submit:
        _submit(cfg, data, missing, cache, out)
    matrix = distance_matrix(data, dd, cache_dir=cache)
    names = matrix.names
    read = sum(matrix.cached[i][j] for i in range(len(names)) for j in range(i + 1, len(names)))
    log.info("matrix: %d pairs read from the cache, %d computed here", read, total - read)
    rows = [{"dataset": a, **{b: float(matrix.values[i, j]) for j, b in enumerate(names)}}
            for i, a in enumerate(names)]
    settings = OmegaConf.to_container(cfg.distance, resolve=True)
    write_table(rows, out / "distance_matrix", notes=(
        f"OTDD between every pair of datasets ({cfg.task.n} items each, split `{cfg.task.split}`, "
        f"`{settings.get('label_distance', '')}` label distances); each pair computed once and "
        f"read from the distance cache."))
    plots.label_distance_heatmap(matrix.values, names, names, out / "distance_matrix.png",
                                 title=f"OTDD ({cfg.task.n} items per dataset)", row_label="",
                                 col_label="", colorbar_label="OTDD")
    return {"datasets": names, "pairs": total, "submitted": len(missing) if cfg.task.submit else 0,
            "computed_here": total - read}


def _submit(cfg: DictConfig, data: dict, missing: list, cache: Path, out: Path) -> None:
    """One job per missing pair with the `hydra/launcher` settings; failed jobs end the run."""
    from hydra.core.hydra_config import HydraConfig

    from otdata.cluster import submit

    launcher = HydraConfig.get().launcher
    kind = EXECUTORS.get(str(launcher.get("_target_", "")).rsplit(".", 1)[-1])
    if kind is None:
        raise ValueError("task.submit=true runs one job per pair through a cluster launcher: add "
                         "`hydra/launcher=slurm_cpu` (or `slurm`, or `local` to try it here).")
    params = {k: OmegaConf.to_container(launcher, resolve=True)[k] for k in launcher
              if k not in ("submitit_folder", "_target_")}
    params["submitit_folder"] = str(Path(cfg.paths.output_dir) / ".submitit" / "%j")
    if kind == "slurm" and params.get("check_request", True):
        submit.check(params)
    distance = OmegaConf.to_container(cfg.distance, resolve=True)
    args = [(a, data[a], b, data[b], distance, str(cache)) for a, b in missing]
    jobs = submit.submit(kind, params, compute_pair, list(zip(*args)))
    outcomes = submit.wait(jobs, kind == "slurm", params)
    failed = [(missing[o.index], o) for o in outcomes if o.status != "ok"]
    if failed:
        lines = [f"  {a} - {b} (job id {o.job_id}) {o.status}: {o.error}\n    log: {o.log_path}"
                 for (a, b), o in failed]
        raise SystemExit(f"otdata: {len(failed)} of {len(outcomes)} pair jobs failed; the others "
                         "are in the cache. Run the same command again to submit only the missing "
                         "pairs:\n" + "\n".join(lines))
