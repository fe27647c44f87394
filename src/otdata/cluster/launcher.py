"""The logic of otdata's submitit launchers (`hydra/launcher=slurm|slurm_cpu|local`).

On top of hydra-submitit-launcher, a sweep (through :mod:`.submit`):

* is checked against the partition (`sinfo`) and the trainer choice before anything is submitted;
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

from otdata.cluster import submit
from otdata.cluster.submit import OWN_KEYS

log = logging.getLogger("otdata.cluster")


class SweepLauncherMixin:
    """Mixed in before submitit's `SlurmLauncher` / `LocalLauncher` (see the module doc)."""

    _EXECUTOR: str

    def __init__(self, **params: Any) -> None:
        own = {k: params.pop(k) for k in OWN_KEYS if k in params}
        super().__init__(**params)
        self.own = {"check_request": False, "lost_after_s": 120, "poll_s": 5, **own}

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Runs inside the job: a job whose task raised fails as a job (log, exit code, state)."""
        result = super().__call__(*args, **kwargs)
        if result.status == JobStatus.FAILED:
            raise result._return_value
        return result

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        slurm = self._EXECUTOR == "slurm"
        # submitit's own two console handlers repeat each of its lines Hydra's handler prints
        logging.getLogger("submitit").handlers.clear()
        params = {**self.params, **self.own}
        if slurm and self.own["check_request"]:
            submit.check(params, OmegaConf.select(self.config, "trainer.accelerator"))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                               Singleton.get_state()))
        submitted = submit.submit(self._EXECUTOR, params, self, list(zip(*job_params)))
        outcomes = submit.wait(submitted, slurm, params)
        return self._results(outcomes, job_overrides, initial_job_idx, sweep_dir)

    def _results(self, outcomes: list, job_overrides, initial_job_idx: int,
                 sweep_dir: Path) -> list[JobReturn]:
        from otdata import summary

        failed = [o for o in outcomes if o.status != "ok"]
        for outcome in failed:
            folder = sweep_dir / str(initial_job_idx + outcome.index)
            record = summary.read_status(folder)
            if record and record.get("error"):   # the job's own account of its error
                outcome.error = record["error"]
            elif not record:                     # it died before it could write one
                summary.write_status(folder, outcome.status, outcome.error,
                                     list(job_overrides[outcome.index]))
        if not failed:
            return [o.result for o in outcomes]
        summary.write_and_print(sweep_dir)
        lines = [f"  job {initial_job_idx + o.index} (job id {o.job_id}) {o.status}: {o.error}\n"
                 f"    log: {o.log_path}" for o in failed]
        raise SystemExit(f"otdata: {len(failed)} of {len(outcomes)} jobs failed (the summary in "
                         f"{sweep_dir} lists every job with its status):\n" + "\n".join(lines))
