"""One table for a whole sweep: a Hydra callback that gathers every job's results at the end.

Each task writes its result table as `<task.name>.csv` in its run folder (`distance.csv`,
`flow.csv`, `train.csv`, `repurpose.csv`, `transferability.csv`, `kshot.csv`). When a multirun ends,
:class:`SweepSummary` reads those tables and each job's overrides (`.hydra/overrides.yaml`) and
writes, into the sweep folder:

  summary.csv / .md        every job's rows, with the overrides that differ between jobs as the
                           first columns (the ones all jobs share are listed under the table)
  summary_seeds.csv / .md  when `seed` is swept: one row per setting and dataset (or pair), each
                           number as mean and standard deviation over the seeds

and prints the Markdown tables. Enabled in `conf/hydra/default.yaml` (`hydra.callbacks`).

Every job also gets a `status.yaml` (`status: ok` or `failed`, and the error's first line), written
by the callback when the job ends, or by otdata's launchers for a job that died without a result.
The summary has a `status` column (and `error` when a job failed) and is written also when some
jobs fail (Hydra calls `on_multirun_end` only when all succeed). `otdata summarize <sweep dir>`
rebuilds it at any time.
"""

from __future__ import annotations

import atexit
import logging
import re
import statistics
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from otdata.tables import columns_of, read_csv, to_markdown, write_table

log = logging.getLogger(__name__)

#: Columns that name a row inside one job's table (several rows per job), by task.
ROW_KEYS = {"repurpose": ["dataset"], "transferability": ["pair"], "distance": ["source", "target"],
            "flow": ["source", "target"], "train": [], "kshot": ["method"]}


def _job_number(folder: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", folder.name))


STATUS_FILE = "status.yaml"


def write_status(folder: Path, status: str, error: str = "", overrides: list[str] | None = None) -> None:
    """Record how a job ended in `<job folder>/status.yaml` (`overrides` for a job that died before
    Hydra wrote its `.hydra` folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"status": status, "error": error}
    if overrides is not None:
        record["overrides"] = list(overrides)
    OmegaConf.save(OmegaConf.create(record), folder / STATUS_FILE)


def read_status(folder: Path) -> dict | None:
    """A job's `status.yaml` as a dict, or None if it has none."""
    path = Path(folder) / STATUS_FILE
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None


def job_folders(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders (those holding `.hydra/overrides.yaml` or `status.yaml`), in job
    order."""
    found = {p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")}
    found |= {p.parent for p in sweep_dir.glob(f"**/{STATUS_FILE}") if ".submitit" not in p.parts}
    return sorted(found, key=lambda p: (len(p.relative_to(sweep_dir).parts), _job_number(p)))


def read_overrides(folder: Path) -> dict[str, str]:
    """`{"data@source": "usps", "seed": "1", ...}` from a job's `.hydra/overrides.yaml` (or its
    `status.yaml`, for a job that died before Hydra started)."""
    path = folder / ".hydra" / "overrides.yaml"
    pairs = (OmegaConf.load(path) if path.is_file() else (read_status(folder) or {}).get("overrides")) or []
    out = {}
    for item in pairs:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def task_name(folder: Path) -> str | None:
    config = folder / ".hydra" / "config.yaml"
    if not config.is_file():
        return None
    return OmegaConf.select(OmegaConf.load(config), "task.name")


def gather(sweep_dir: Path) -> tuple[list[dict], list[str], dict[str, str], list[str]]:
    """Every job's result rows, prefixed by its varying overrides.

    Returns `(rows, override_columns, shared_overrides, tasks)`. Each row has the job's `status`
    (`ok`, `failed`, a SLURM state, or why its table is missing) and, if it failed, `error`; a job
    without a result table contributes one row.
    """
    jobs = [(folder, read_overrides(folder), task_name(folder)) for folder in job_folders(sweep_dir)]
    keys = list(dict.fromkeys(k for _, overrides, _ in jobs for k in overrides))
    varying = [k for k in keys if len({o.get(k) for _, o, _ in jobs}) > 1]
    shared = {k: v for k, v in (jobs[0][1] if jobs else {}).items() if k not in varying}
    rows: list[dict] = []
    for folder, overrides, task in jobs:
        prefix = {"job": folder.relative_to(sweep_dir).as_posix(),
                  **{k: overrides.get(k, "") for k in varying}}
        table = folder / f"{task}.csv"
        record = read_status(folder) or {}
        status = {"status": record.get("status", "ok")}
        if record.get("error"):
            status["error"] = record["error"]
        if task and table.is_file():
            rows += [{**prefix, **status, **row} for row in read_csv(table)]
        else:
            if not record:
                status["status"] = f"no result table ({table.name if task else '<task>.csv'} missing)"
            rows.append({**prefix, **status})
    tasks = list(dict.fromkeys(task for _, _, task in jobs if task))
    return rows, varying, shared, tasks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def over_seeds(rows: list[dict], varying: list[str], tasks: list[str]) -> list[dict]:
    """Rows grouped by everything but the seed; numbers as `<col>` (mean) and `<col>_std`.

    A row is identified by the other varying overrides and its task's row keys (the dataset of a
    re-purposing row, the pair of a transferability row). Text columns keep their value when every
    seed agrees, else say how many values they took.
    """
    keys = [k for k in varying if k != "seed"]
    keys += [k for task in tasks for k in ROW_KEYS.get(task, [])]
    keys = list(dict.fromkeys(keys))
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    columns = [c for c in columns_of(rows) if c not in ("job", "seed", *keys)]
    out = []
    for key, members in groups.items():
        summary: dict[str, Any] = dict(zip(keys, key))
        summary["seeds"] = len(members)
        for column in columns:
            values = [m.get(column) for m in members if m.get(column) is not None]
            if values and all(_is_number(v) for v in values) and len(set(values)) > 1:
                summary[column] = statistics.fmean(values)
                summary[f"{column}_std"] = statistics.stdev(values)
            elif values and len(set(map(str, values))) == 1:
                summary[column] = values[0]   # the same in every seed: shown as it is
            elif values:
                distinct = list(dict.fromkeys(str(v) for v in values))
                summary[column] = distinct[0] if len(distinct) == 1 else f"{len(distinct)} values"
        out.append(summary)
    return out


def mean_std_markdown(rows: list[dict], notes: str | None = None) -> str:
    """Markdown of `over_seeds` rows, each number with a std shown as `mean ± std`."""
    shown = []
    for row in rows:
        cells = {}
        for column, value in row.items():
            if column.endswith("_std") and column[:-4] in row:
                continue
            std = row.get(f"{column}_std")
            cells[column] = f"{value:.4g} ± {std:.2g}" if std is not None else value
        shown.append(cells)
    return to_markdown(shown, notes=notes)


def _shared_note(shared: dict[str, str], tasks: list[str]) -> str:
    lines = []
    if shared:
        lines.append("Same in every job: " + ", ".join(f"`{k}={v}`" for k, v in shared.items()) + ".")
    if tasks:
        lines.append("Rows come from each job's " + ", ".join(f"`{t}.csv`" for t in tasks)
                     + "; `job` is the job's folder.")
    return "\n".join(lines)


def _error_last(rows: list[dict]) -> list[dict]:
    """The `error` column moved to the end (it is long), present only when a job failed."""
    return [{**{k: v for k, v in row.items() if k != "error"},
             **({"error": row["error"]} if "error" in row else {})} for row in rows]


def summarize(sweep_dir: str | Path) -> dict[str, Path]:
    """Write `summary.csv/.md` (and `summary_seeds.csv/.md` when seeds vary) into `sweep_dir`."""
    sweep_dir = Path(sweep_dir)
    rows, varying, shared, tasks = gather(sweep_dir)
    rows = _error_last(rows)
    if not rows:
        return {}
    note = _shared_note(shared, tasks)
    written = {}
    written["summary"], _ = write_table(rows, sweep_dir / "summary", notes=note)
    if "seed" in varying:
        seeds_rows = over_seeds(rows, varying, tasks)
        written["summary_seeds"], md = write_table(seeds_rows, sweep_dir / "summary_seeds")
        md.write_text(mean_std_markdown(
            seeds_rows, notes="Mean ± standard deviation over the swept seeds (`seeds` is how many "
                              "jobs each row averages).\n" + note))
    return written


#: Sweep folders whose summary this process has written (the exit hook skips them).
_WRITTEN: set[Path] = set()


def write_and_print(sweep_dir: str | Path, print_tables: bool = True) -> dict[str, Path]:
    """:func:`summarize`, then print the tables; a failure to summarize is a warning, never an error
    (it must not turn a finished sweep into a failure)."""
    sweep_dir = Path(sweep_dir)
    _WRITTEN.add(sweep_dir.resolve())
    try:
        written = summarize(sweep_dir)
    except Exception as error:
        log.warning("Could not write the sweep summary in %s: %s", sweep_dir, error)
        return {}
    for name, csv_path in written.items():
        md = csv_path.with_suffix(".md")
        if print_tables:
            print(f"\n{name} ({md}):\n\n{md.read_text()}", flush=True)
    return written


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class SweepSummary(Callback):
    """Hydra callback: every job's status, and one summary table of every job at the end of a
    multirun, also when jobs failed (see module doc)."""

    def __init__(self, print_tables: bool = True):
        self.print_tables = print_tables

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        atexit.register(self._if_unwritten, sweep_dir)   # Hydra skips on_multirun_end on failure

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        failed = job_return.status == JobStatus.FAILED
        write_status(Path(HydraConfig.get().runtime.output_dir), "failed" if failed else "ok",
                     _first_line(job_return._return_value) if failed else "")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_and_print(Path(str(config.hydra.sweep.dir)), self.print_tables)

    def _if_unwritten(self, sweep_dir: Path) -> None:
        if sweep_dir.resolve() not in _WRITTEN and sweep_dir.is_dir():
            write_and_print(sweep_dir, self.print_tables)
