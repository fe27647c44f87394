"""Sweeps submitted to a real SLURM scheduler through `hydra/launcher=slurm_cpu` / `slurm`.

Every case ends within a bounded time with a clear message: a 2x2 sweep (summary written, the same
values as a local run), jobs that raise or miss their data (reported as failures, the summary
still written, SLURM records FAILED), a job cancelled with `scancel`, Ctrl-C on the submitter (the
jobs are cancelled) and the shipped GPU defaults on a node that cannot satisfy them (refused before
anything is submitted). The jobs are tiny distances on generated data (1 CPU each).
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import write_mnist_like, write_usps

pytestmark = pytest.mark.slurm

TINY = ["task=distance", "task.n_source=40", "task.n_target=40"]
#: Small jobs, one CPU each (two run at a time on a 2-CPU node), quick polling.
CLUSTER = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
           "hydra.launcher.timeout_min=10", "hydra.launcher.poll_s=1", "hydra.launcher.lost_after_s=20"]
SUBMITTED = re.compile(r"submitted SLURM job\(s\) ([\d_, ]+);")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """USPS, MNIST and FashionMNIST, tiny; no KMNIST (the missing-data case)."""
    root = tmp_path_factory.mktemp("slurm_data")
    write_mnist_like(root, "MNIST")
    write_mnist_like(root, "FashionMNIST")
    return write_usps(root)


def _env(tmp_path: Path, data: Path) -> dict:
    return {**os.environ, "OTDATA_DATA_DIR": str(data), "OTDATA_CACHE_DIR": str(tmp_path / "cache"),
            "MPLBACKEND": "Agg", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def otdata(args: list[str], tmp_path: Path, data: Path, timeout: float = 240):
    """Run `otdata args` in `tmp_path`; returns (exit code, stdout + stderr, seconds)."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "otdata.cli", *args], cwd=tmp_path,
                          env=_env(tmp_path, data), capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def job_ids(output: str, record_jobs) -> list[str]:
    match = SUBMITTED.search(output)
    assert match, f"no job ids printed:\n{output[-3000:]}"
    ids = [i.strip() for i in match.group(1).split(",")]
    record_jobs(ids)
    print("SLURM job ids:", ", ".join(ids))
    return ids


def slurm_state(job_id: str, timeout: float = 30) -> str:
    """`"<state> <exit code>"` once the job has left RUNNING/COMPLETING (its result file is written
    just before its process ends), waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                             timeout=20).stdout
        state = re.search(r"JobState=(\S+)", out)
        code = re.search(r"\bExitCode=(\S+)", out)
        shown = f"{state.group(1) if state else '?'} {code.group(1) if code else '?'}"
        if not shown.startswith(("RUNNING", "COMPLETING", "PENDING")) or time.monotonic() > deadline:
            return shown
        time.sleep(1)


def summary_rows(sweep: Path) -> list[dict]:
    with open(sweep / "summary.csv") as handle:
        return list(csv.DictReader(handle))


def test_a_two_by_two_sweep_runs_on_slurm_with_the_values_of_a_local_run(tmp_path, data, record_jobs):
    grid = ["data@source=usps,fashion_mnist", "distance=gaussian,means"]
    code, out, seconds = otdata(["-m", *CLUSTER, *TINY, *grid, "hydra.sweep.dir=slurm"], tmp_path, data)
    assert code == 0, out[-3000:]
    ids = job_ids(out, record_jobs)
    assert len(ids) == 4 and all(slurm_state(i) == "COMPLETED 0:0" for i in ids)
    assert re.search(r"request fits partition '\w+'", out)

    code, local_out, _ = otdata(["-m", *TINY, *grid, "hydra.sweep.dir=local"], tmp_path, data)
    assert code == 0, local_out[-3000:]
    on_slurm, local = summary_rows(tmp_path / "slurm"), summary_rows(tmp_path / "local")
    key = lambda r: (r["data@source"], r["distance"])
    assert sorted(map(key, on_slurm)) == sorted(map(key, local)) and len(local) == 4
    local_by = {key(r): r for r in local}
    for row in on_slurm:
        assert row["status"] == "ok" and row["converged"] == "True"
        assert float(row["otdd"]) == pytest.approx(float(local_by[key(row)]["otdd"]), rel=1e-6)
    assert "summary (slurm/summary.md)" in out
    logs = list((tmp_path / "slurm" / ".submitit").glob("*/*_0_log.out"))
    assert len(logs) == 4


def test_jobs_that_raise_or_miss_data_fail_as_failures_and_the_summary_is_written(tmp_path, data,
                                                                                  record_jobs):
    grid = ["data@source=usps,kmnist", "task.split=train,bogus"]   # no KMNIST files; a bad split
    code, out, seconds = otdata(["-m", *CLUSTER, *TINY, *grid, "hydra.sweep.dir=sweep"], tmp_path, data)
    print(f"failed-jobs sweep: exit {code} after {seconds:.0f} s")
    assert code == 1, out[-3000:]
    ids = job_ids(out, record_jobs)
    assert re.search(r"otdata: 3 of 4 jobs failed", out)
    assert re.search(r"job 1 \(job id \d+_1\) failed: ValueError: split must be one of", out)
    assert re.search(r"job 2 \(job id \d+_2\) failed: DataFileError: KMNIST", out)
    states = {i: slurm_state(i) for i in ids}
    assert states[ids[0]] == "COMPLETED 0:0"
    assert all(states[i] == "FAILED 1:0" for i in ids[1:]), states
    assert "Traceback" in (tmp_path / "sweep" / ".submitit" / ids[1] / f"{ids[1]}_0_log.err").read_text()

    rows = {(r["data@source"], r["task.split"]): r for r in summary_rows(tmp_path / "sweep")}
    assert rows[("usps", "train")]["status"] == "ok" and float(rows[("usps", "train")]["otdd"]) > 0
    assert rows[("usps", "bogus")]["status"] == "failed"
    assert rows[("usps", "bogus")]["error"].startswith("ValueError: split must be one of")
    assert rows[("kmnist", "train")]["error"].startswith("DataFileError: KMNIST")
    assert "| failed |" in out                       # the summary is printed before the message


def _interruptible() -> None:
    """Ctrl-C as at a terminal: a suite started in the background by a script inherits an ignored
    SIGINT, and Python then never raises KeyboardInterrupt in the submitter."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _submit_in_background(tmp_path: Path, data: Path, extra: list[str]):
    """Start a one-job sweep and return (process, job id) once the submitter printed the id."""
    args = ["-m", *CLUSTER, *TINY, "hydra.sweep.dir=sweep", *extra]
    process = subprocess.Popen([sys.executable, "-m", "otdata.cli", *args], cwd=tmp_path,
                               env=_env(tmp_path, data), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, preexec_fn=_interruptible)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if SUBMITTED.search(line) or not line:
            break
    match = SUBMITTED.search("".join(lines))
    if not match:
        process.kill()
        pytest.fail("no job id printed:\n" + "".join(lines)[-3000:])
    return process, match.group(1).strip(), "".join(lines)


def _finish(process, before: str, timeout: float = 120) -> tuple[int, str, float]:
    start = time.monotonic()
    try:
        rest, _ = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, before + rest, time.monotonic() - start


#: keeps a submitted job running for a while (its batch script sleeps before the task), so that a
#: test's scancel or Ctrl-C reaches it before a tiny task could finish on an idle node
HOLD = ['hydra.launcher.setup=["sleep 60"]']


def test_a_cancelled_job_is_reported_within_a_bounded_time(tmp_path, data, record_jobs):
    process, job, before = _submit_in_background(tmp_path, data, HOLD)
    record_jobs([job])
    subprocess.run(["scancel", job.split("_")[0]], check=True, timeout=20)
    cancelled = time.monotonic()
    code, out, seconds = _finish(process, before)
    print(f"scancel {job}: the submitter ended {time.monotonic() - cancelled:.0f} s later, exit {code}")
    assert code == 1, out[-3000:]
    assert re.search(rf"job 0 \(job id {job}\) cancelled: SLURM ended it as CANCELLED", out)
    assert slurm_state(job).startswith("CANCELLED")
    assert summary_rows(tmp_path / "sweep")[0]["status"] == "cancelled"


def test_ctrl_c_on_the_submitter_cancels_the_jobs(tmp_path, data, record_jobs):
    process, job, before = _submit_in_background(tmp_path, data, HOLD)
    record_jobs([job])
    process.send_signal(signal.SIGINT)
    code, out, seconds = _finish(process, before, timeout=60)
    assert code == 130, out[-3000:]
    assert f"cancelled SLURM job(s) {job.split('_')[0]}" in out
    assert slurm_state(job).startswith("CANCELLED")


def test_the_gpu_defaults_on_a_cpu_node_are_refused_before_submitting(tmp_path, data):
    queued = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i"], capture_output=True,
                            text=True, timeout=20).stdout
    code, out, seconds = otdata(["-m", "hydra/launcher=slurm", *TINY], tmp_path, data, timeout=120)
    print(f"GPU defaults on a CPU node: exit {code} after {seconds:.0f} s")
    assert code == 1
    assert "The SLURM request cannot run on partition" in out
    assert "gpus_per_node=1 but its nodes have no GPUs; fix: `hydra/launcher=slurm_cpu`" in out
    cpus, mem_mb = map(int, subprocess.run(["sinfo", "-h", "-o", "%c %m"], capture_output=True,
                                           text=True, timeout=20).stdout.split()[:2])
    if cpus < 8:
        assert f"at most {cpus} CPUs; fix: `hydra.launcher.cpus_per_task={cpus}`" in out
    if mem_mb < 32 * 1024:
        assert f"mem_gb=32 but its nodes have at most {mem_mb // 1024} GB" in out
    assert "Traceback" not in out
    after = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i"], capture_output=True,
                           text=True, timeout=20).stdout
    assert set(after.split()) <= set(queued.split())     # nothing was submitted


def test_without_the_check_a_request_that_would_pend_forever_is_cancelled_and_reported(tmp_path, data,
                                                                                     record_jobs):
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True,
                              timeout=20).stdout.split()[0])
    args = ["-m", *CLUSTER, *TINY, "hydra.launcher.check_request=false",
            f"hydra.launcher.cpus_per_task={cpus + 1}", "hydra.sweep.dir=sweep"]
    code, out, seconds = otdata(args, tmp_path, data, timeout=180)
    print(f"{cpus + 1} CPUs on a {cpus}-CPU node without the check: exit {code} after {seconds:.0f} s")
    assert code == 1, out[-3000:]
    [job] = job_ids(out, record_jobs)
    assert re.search(rf"job 0 \(job id {job}\) never_started: it pended with reason PartitionConfig", out)
    assert slurm_state(job).startswith("CANCELLED")


def test_a_distance_matrix_runs_one_job_per_missing_pair_and_resumes(tmp_path, data, record_jobs):
    matrix = ["task=distance_matrix", "task.datasets=[usps,mnist,fashion_mnist]", "task.n=40"]
    code, out, _ = otdata([*matrix, "task.cache_dir=local", "hydra.run.dir=here"], tmp_path, data)
    assert code == 0, out[-3000:]
    submit = [*matrix, "task.cache_dir=shared", "task.submit=true", *CLUSTER]
    code, out, _ = otdata([*submit, "hydra.run.dir=first"], tmp_path, data)
    assert code == 0, out[-3000:]
    assert len(job_ids(out, record_jobs)) == 3 and "0 in the cache" in out
    assert "matrix: 3 pairs read from the cache, 0 computed here" in out
    here = (tmp_path / "here" / "distance_matrix.csv").read_text()
    assert (tmp_path / "first" / "distance_matrix.csv").read_text() == here
    assert (tmp_path / "first" / "distance_matrix.png").stat().st_size > 0

    sorted((tmp_path / "shared").glob("otdd_*.pt"))[0].unlink()     # a pair that never finished
    code, out, _ = otdata([*submit, "hydra.run.dir=again"], tmp_path, data)
    assert code == 0, out[-3000:]
    assert len(job_ids(out, record_jobs)) == 1 and "2 in the cache" in out
    assert (tmp_path / "again" / "distance_matrix.csv").read_text() == here
