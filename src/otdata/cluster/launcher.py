"""The logic of otdata's submitit launchers (`hydra/launcher=slurm|slurm_cpu|local`).

On top of hydra-submitit-launcher, a sweep:

* is checked against the partition (`sinfo`) before anything is submitted (:mod:`.request`);
* prints its SLURM job ids, where the logs are and how to cancel;
* waits a bounded time for jobs that die without a result (:mod:`.jobs`), without accounting too;
* treats a job that raises as failed in the job itself (its log ends with the traceback and SLURM
  records FAILED), and on the submitting side writes the summary of every job, with its status,
  before ending with exit code 1 and one line per failed job;
* cancels its jobs on Ctrl-C.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from otdata.cluster import jobs as jobs_mod
from otdata.cluster.request import RequestError, check_request, check_trainer, read_partitions

log = logging.getLogger("otdata.cluster")

#: The launcher settings that are otdata's own (not passed on to submitit).
OWN_KEYS = ("check_request", "lost_after_s", "poll_s")


class SweepLauncherMixin:
    """Mixed in before submitit's `SlurmLauncher` / `LocalLauncher` (see the module doc)."""

    _EXECUTOR: str

    def __init__(self, **params: Any) -> None:
        own = {k: params.pop(k) for k in OWN_KEYS if k in params}
        super().__init__(**params)
        self.check = bool(own.get("check_request", False))
        self.lost_after_s = float(own.get("lost_after_s", 120))
        self.poll_s = float(own.get("poll_s", 5))

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Runs inside the job: a job whose task raised fails as a job (log, exit code, state)."""
        result = super().__call__(*args, **kwargs)
        if result.status == JobStatus.FAILED:
            raise result._return_value
        return result

    def _executor(self):
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
                                         **({f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]}
                                            if "max_num_timeout" in self.params else {}))
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items()
            if k not in ("submitit_folder", "max_num_timeout")})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        slurm = self._EXECUTOR == "slurm"
        # submitit's own two console handlers repeat each of its lines Hydra's handler prints
        logging.getLogger("submitit").handlers.clear()
        if slurm and self.check:
            self._check_request()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                               Singleton.get_state()))
        submitted = self._submit(job_params)
        try:
            self._announce(submitted, slurm)
            outcomes = jobs_mod.wait(submitted, slurm, self.lost_after_s, self.poll_s)
        except KeyboardInterrupt:
            if slurm:
                log.warning("interrupted: %s", jobs_mod.cancel([j.job_id for j in submitted]))
            else:
                for job in submitted:
                    job.cancel(check=False)
                log.warning("interrupted: the sweep's local processes were stopped")
            raise SystemExit(130) from None
        return self._results(outcomes, job_overrides, initial_job_idx, sweep_dir)

    def _submit(self, job_params: list) -> list:
        """One array job for the sweep; sbatch's refusal as one message, not a traceback."""
        import submitit

        try:
            return self._executor().map_array(self, *zip(*job_params))
        except submitit.core.utils.FailedJobError as error:
            raise SystemExit(
                f"otdata: the scheduler refused the sweep: {str(error).strip()}\n"
                "Check hydra.launcher.* (cpus_per_task, mem_gb, gpus_per_node, timeout_min, "
                "partition) against `sinfo`; CPU jobs: `hydra/launcher=slurm_cpu`."
                + ("" if self.check else " `hydra.launcher.check_request=true` checks the request "
                   "before submitting.")) from None

    def _check_request(self) -> None:
        accelerator = OmegaConf.select(self.config, "trainer.accelerator")
        try:
            unused = check_trainer(self.params, accelerator)
            kind = check_request(self.params, read_partitions())
        except RequestError as error:
            raise SystemExit(f"otdata: {error}") from None
        if unused:
            log.warning(unused)
        log.info("request fits partition %r (nodes with %d CPUs, %d GB, %d GPUs)", kind.partition,
                 kind.cpus, kind.mem_mb // 1024, kind.gpus)

    def _announce(self, submitted: list, slurm: bool) -> None:
        first = submitted[0]
        folder = Path(first.paths.stdout).parent
        ids = ", ".join(j.job_id for j in submitted)
        if slurm:
            base = first.job_id.split("_")[0]
            log.info("submitted SLURM job(s) %s; logs: %s/<job id>/<job id>_0_log.out|err; "
                     "cancel: `scancel %s` (or Ctrl-C here)", ids, folder.parent, base)
        else:
            log.info("started local job(s) %s; logs: %s/", ids, folder.parent)

    def _results(self, outcomes: list, job_overrides, initial_job_idx: int,
                 sweep_dir: Path) -> list[JobReturn]:
        from otdata import summary

        failed = [o for o in outcomes if o.status != "ok"]
        for outcome in outcomes:
            overrides = list(job_overrides[outcome.index])
            folder = sweep_dir / str(initial_job_idx + outcome.index)
            record = summary.read_status(folder)
            if outcome.status == "ok":
                continue
            if record and record.get("error"):   # the job's own account of its error
                outcome.error = record["error"]
            elif not record:                     # it died before it could write one
                summary.write_status(folder, outcome.status, outcome.error, overrides)
        if not failed:
            return [o.result for o in outcomes]
        summary.write_and_print(sweep_dir)
        lines = [f"  job {initial_job_idx + o.index} (job id {o.job_id}) {o.status}: {o.error}\n"
                 f"    log: {o.log_path}" for o in failed]
        raise SystemExit(f"otdata: {len(failed)} of {len(outcomes)} jobs failed (the summary in "
                         f"{sweep_dir} lists every job with its status):\n" + "\n".join(lines))
