"""Submit function calls as one job array with the launcher's settings, and wait for them.

Used by the sweep launcher (each call is one Hydra job) and by tasks that spread their own work
over a cluster (`task=distance_matrix`: one call per pair of datasets). Both get the same request
check, job ids on the console, bounded wait and Ctrl-C cancelling (see :mod:`.jobs`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from otdata.cluster import jobs
from otdata.cluster.request import RequestError, check_request, check_trainer, read_partitions

log = logging.getLogger("otdata.cluster")

#: The launcher settings that are otdata's own (not passed on to submitit).
OWN_KEYS = ("check_request", "lost_after_s", "poll_s")


def make_executor(kind: str, params: dict):
    """A submitit executor (`kind`: `slurm` or `local`) from a launcher config's settings (as in
    `conf/hydra/launcher/*.yaml`, without otdata's own keys)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    extra = {f"{kind}_max_num_timeout": params["max_num_timeout"]} if "max_num_timeout" in params else {}
    executor = submitit.AutoExecutor(cluster=kind, folder=params["submitit_folder"], **extra)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{
        k if k in base else f"{kind}_{k}": v for k, v in params.items()
        if k not in ("submitit_folder", "max_num_timeout", "_target_", *OWN_KEYS)})
    return executor


def check(params: dict, accelerator: str | None = None) -> None:
    """The request against `sinfo` and the trainer choice; SystemExit with the fix if it cannot run."""
    try:
        unused = check_trainer(params, accelerator)
        kind = check_request(params, read_partitions())
    except RequestError as error:
        raise SystemExit(f"otdata: {error}") from None
    if unused:
        log.warning(unused)
    log.info("request fits partition %r (nodes with %d CPUs, %d GB, %d GPUs)", kind.partition,
             kind.cpus, kind.mem_mb // 1024, kind.gpus)


def submit(kind: str, params: dict, fn: Callable, arg_lists: Sequence[Sequence[Any]]) -> list:
    """One job per call `fn(*args)`, as one array; sbatch's refusal as one message."""
    import submitit

    try:
        submitted = make_executor(kind, params).map_array(fn, *arg_lists)
    except submitit.core.utils.FailedJobError as error:
        raise SystemExit(
            f"otdata: the scheduler refused the jobs: {str(error).strip()}\n"
            "Check hydra.launcher.* (cpus_per_task, mem_gb, gpus_per_node, timeout_min, "
            "partition) against `sinfo`; CPU jobs: `hydra/launcher=slurm_cpu`."
            + ("" if params.get("check_request") else " `hydra.launcher.check_request=true` "
               "checks the request before submitting.")) from None
    return submitted


def announce(submitted: list, slurm: bool) -> None:
    """The job ids, where their logs are and how to cancel them."""
    folder = Path(submitted[0].paths.stdout).parent.parent
    ids = ", ".join(j.job_id for j in submitted)
    if slurm:
        base = submitted[0].job_id.split("_")[0]
        log.info("submitted SLURM job(s) %s; logs: %s/<job id>/<job id>_0_log.out|err; "
                 "cancel: `scancel %s` (or Ctrl-C here)", ids, folder, base)
    else:
        log.info("started local job(s) %s; logs: %s/", ids, folder)


def wait(submitted: list, slurm: bool, params: dict) -> list[jobs.Outcome]:
    """Print the job ids (:func:`announce`), then :func:`jobs.wait` with the launcher's bounds;
    Ctrl-C cancels every job, then exits (130)."""
    try:
        announce(submitted, slurm)
        return jobs.wait(submitted, slurm, float(params.get("lost_after_s", 120)),
                         float(params.get("poll_s", 5)))
    except KeyboardInterrupt:
        if slurm:
            log.warning("interrupted: %s", jobs.cancel([j.job_id for j in submitted]))
        else:
            for job in submitted:
                job.cancel(check=False)
            log.warning("interrupted: the local jobs were stopped")
        raise SystemExit(130) from None
