"""The `otdata` command: composes the Hydra config and runs the chosen task.

    otdata task=distance data@source=usps data@target=mnist
    otdata -m task=train seed=0,1          # a sweep: one job per seed
    otdata --help                          # every group and option
    otdata summarize multirun/distance/<date>_<time>   # rebuild a sweep's summary table
    otdata explore paths.data_dir=/datasets            # the explorer's web page (= task=explore)

Each task is a module `otdata.tasks.<task.name>` with a `run(cfg) -> dict` function; the apps on top
of the tasks (`explore`) are named in `APP_TASKS`.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the command's start, before the imports (a run's total time counts them)

import importlib
import logging
import sys

import hydra
from omegaconf import DictConfig

from otdata import console
from otdata.config import CONFIG_DIR
from otdata.data.errors import DataFileError, DataFormatError
from otdata.instantiate import guard_hydra_callbacks
from otdata.tasks.rundir import RunFolderBusyError, lock_run_folder

log = logging.getLogger(__name__)
#: tasks served by an app above the tasks (a module with `run(cfg)`), not by `otdata.tasks.<name>`
APP_TASKS = {"explore": "otdata.explore.task"}
guard_hydra_callbacks()  # `hydra.callbacks.*` pass the same allow-list, before Hydra builds them


def run_task(cfg: DictConfig) -> dict:
    """Import `otdata.tasks.<cfg.task.name>` and run it on the composed config."""
    name = cfg.task.name
    module_name = APP_TASKS.get(name, f"otdata.tasks.{name}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise ValueError(
            f"Unknown task {name!r}: there is no module otdata.tasks.{name}. "
            f"Choose one of the files in {CONFIG_DIR / 'task'} (e.g. `task=distance`)."
        ) from error
    try:
        with lock_run_folder(cfg.paths.output_dir):  # one writer; `UNFINISHED` until it returns
            return module.run(cfg)
    except (DataFileError, DataFormatError, RunFolderBusyError) as error:  # message alone, exit 1
        if _in_sweep():  # a failed job of a sweep: an ordinary exception, reported by the sweep
            raise
        raise SystemExit(f"otdata: {error}") from None


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def main() -> float | None:
    """The `otdata` command: `otdata summarize <sweep dir>`, or a Hydra run (:func:`run`)."""
    if sys.argv[1:2] == ["summarize"]:
        return summarize_command(sys.argv[2:])
    if sys.argv[1:2] == ["explore"]:  # `otdata explore ARGS` is `otdata task=explore ARGS`
        sys.argv[1:2] = ["task=explore"]
    return run()


def summarize_command(args: list[str]) -> None:
    """`otdata summarize <sweep dir>`: (re)write and print the sweep's summary tables."""
    from pathlib import Path

    from otdata import summary

    if len(args) != 1 or not Path(args[0]).is_dir():
        raise SystemExit("usage: otdata summarize <sweep folder>   (e.g. multirun/distance/"
                         "2025-01-31_12-00-00-000000)" + (f"; {args[0]!r} is not a folder" if args else ""))
    if not summary.write_and_print(args[0]):
        raise SystemExit(f"otdata: {args[0]} holds no job folder (no */.hydra/overrides.yaml): "
                         "is it the sweep folder that `otdata -m` printed?")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def run(cfg: DictConfig) -> float | None:
    """Hydra entry point. Returns the task's `objective` metric, if any (for sweepers)."""
    start = time.perf_counter() if _in_sweep() else STARTED  # a sweep: each job's own time
    job = _job()
    console.setup()
    console.announce(cfg.task.name, job["output_dir"], job["overrides"])
    result = run_task(cfg) or {}
    console.finish(cfg.task.name, job["output_dir"], job["overrides"])
    whole = None if _in_sweep() else console.process_seconds()  # start-up included, when known
    console.total_time(cfg.task.name, whole if whole is not None else time.perf_counter() - start)
    return result.get("objective")


def _job() -> dict:
    """This job's run folder and task overrides, from Hydra."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    return {"output_dir": hydra_cfg.runtime.output_dir, "overrides": list(hydra_cfg.overrides.task)}


if __name__ == "__main__":
    main()
