"""Wait for a sweep's submitit jobs, a bounded time, and say how each one ended.

submitit reads SLURM job states with `sacct`, which needs accounting; on a cluster without it, a
job that dies without writing its result (cancelled, killed, out of memory) leaves submitit
waiting forever. Here a job is finished when its result file exists, or when the queue (`squeue`,
which needs no accounting; `sacct` too where accounting exists) says it ended, or when it has been
gone from the queue for `lost_after_s` seconds: then it is reported as lost, with its last state
and the path of its log. A job pending for a reason that never clears (a request larger than the
partition's nodes: `PartitionConfig`, ...) is cancelled and reported instead of waited for.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: SLURM states of a job that will not run any more.
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
         "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "REVOKED"}
#: Reasons a job pends that do not clear by waiting (the request exceeds the partition's limits).
NEVER_STARTS = {"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
                "InvalidAccount", "InvalidQOS", "QOSMaxCpuPerJobLimit", "QOSMaxGRESPerJob",
                "QOSMaxMemoryPerJob", "QOSMaxWallDurationPerJobLimit", "QOSMaxNodePerJobLimit"}
#: Seconds a job may stay in such a state (or ended without result) before it is reported.
GRACE_S = 15


@dataclass
class Outcome:
    """How one job ended: `status` is `ok`, `failed` or the SLURM state of a job without result."""

    index: int
    job_id: str
    status: str
    error: str = ""
    result: Any = None
    log_path: str = ""


def queue_states(job_ids: list[str], timeout_s: float = 30) -> dict[str, str]:
    """`{"123_0": "RUNNING", "123_1": "PENDING PartitionConfig", ...}` from `squeue` (jobs that
    ended stay listed for the cluster's MinJobAge), completed by `sacct` where accounting exists.
    A pending job's state is followed by its reason. Unknown jobs are absent."""
    bases = sorted({j.split("_")[0] for j in job_ids})
    states: dict[str, str] = {}
    # -r: one line per array task (pending tasks are otherwise listed together as `123_[2-3]`)
    commands = [["squeue", "-h", "-r", "--states=all", "-o", "%i|%T %r", "-j", ",".join(bases)]]
    if shutil.which("sacct"):
        commands.append(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(bases)])
    for command in commands:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode != 0:
            continue  # sacct without accounting; squeue once the jobs are forgotten
        for line in done.stdout.splitlines():
            job, _, state = line.partition("|")
            if job and state:
                words = state.split()
                states.setdefault(job.strip(), " ".join(words[:2] if words[0] == "PENDING" else words[:1]))
    return states


def _log_path(job) -> str:
    return str(job.paths.stderr)


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def _error_line(trace: str) -> str:
    """The last line of a traceback that names an exception (`ValueError: ...`)."""
    lines = [line.strip() for line in str(trace).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith(("File ", "^", "-", "You can check", "or at paths")):
            head = line.split(":", 1)[0]
            if head.replace(".", "").replace("_", "").isalnum() and ":" in line:
                return line
    return lines[-1] if lines else ""


def _collect(index: int, job) -> Outcome:
    """The outcome of a job whose result file exists."""
    import submitit

    try:
        result = job.results()[0]
    except submitit.core.utils.FailedJobError as error:
        return Outcome(index, job.job_id, "failed", _error_line(str(error)), log_path=_log_path(job))
    return Outcome(index, job.job_id, "ok", result=result, log_path=_log_path(job))


def wait(jobs: list, slurm: bool, lost_after_s: float, poll_s: float) -> list[Outcome]:
    """Wait until every job has a result or has ended without one; never longer than the jobs run
    plus `lost_after_s` (see the module doc). Ctrl-C propagates (the caller cancels the jobs)."""
    outcomes: dict[int, Outcome] = {}
    gone_since: dict[int, float] = {}
    while len(outcomes) < len(jobs):
        waiting = [(i, job) for i, job in enumerate(jobs) if i not in outcomes]
        states = queue_states([job.job_id for _, job in waiting]) if slurm else {}
        for i, job in waiting:
            if job.paths.result_pickle.exists():
                outcomes[i] = _collect(i, job)
                continue
            if not slurm:
                if job.done():
                    time.sleep(1)  # the result file of a process that just ended
                    outcomes[i] = (_collect(i, job) if job.paths.result_pickle.exists() else
                                   Outcome(i, job.job_id, "lost", "the process ended without a result",
                                           log_path=_log_path(job)))
                continue
            state = states.get(job.job_id)
            never = state is not None and state.startswith("PENDING ") and state.split()[1] in NEVER_STARTS
            if state is not None and state not in ENDED and not never:
                gone_since.pop(i, None)
                continue
            first_seen = gone_since.setdefault(i, time.monotonic())
            if time.monotonic() - first_seen >= (GRACE_S if state else lost_after_s):
                outcomes[i] = _never_starts(i, job, state) if never else _lost(i, job, state, lost_after_s)
        if len(outcomes) < len(jobs):
            time.sleep(poll_s)
    return [outcomes[i] for i in range(len(jobs))]


def _lost(index: int, job, state: str | None, lost_after_s: float) -> Outcome:
    """A job that ended (or left the queue) without writing its result."""
    if state:
        what = f"SLURM ended it as {state} without a result"
    else:
        what = (f"it left the queue {lost_after_s:.0f} s ago without a result and SLURM no longer "
                "knows it (no accounting: its final state is unknown)")
    tail = _tail(_log_path(job))
    detail = f"; its log ends: {tail.splitlines()[-1]}" if tail else ""
    return Outcome(index, job.job_id, (state or "lost").lower(), what + detail,
                   log_path=_log_path(job))


def _never_starts(index: int, job, state: str) -> Outcome:
    """A job that pends for a reason that does not clear: cancelled, and said why."""
    cancel([job.job_id])
    return Outcome(index, job.job_id, "never_started",
                   f"it pended with reason {state.split()[1]} (SLURM will never start it: the "
                   "request exceeds what the partition allows) and was cancelled; check "
                   "hydra.launcher.cpus_per_task / mem_gb / gpus_per_node / timeout_min against "
                   "`sinfo`, or leave hydra.launcher.check_request=true",
                   log_path=_log_path(job))


def cancel(job_ids: list[str], timeout_s: float = 30) -> str:
    """`scancel` the given SLURM jobs (`123` or array tasks `123_4`); returns what was done."""
    bases = list(dict.fromkeys(job_ids))
    try:
        subprocess.run(["scancel", *bases], capture_output=True, text=True, timeout=timeout_s,
                       check=True)
    except (OSError, subprocess.SubprocessError) as error:
        return f"could not cancel SLURM job(s) {' '.join(bases)} ({error}): run `scancel {' '.join(bases)}`"
    return f"cancelled SLURM job(s) {' '.join(bases)}"
