"""The `slurm` marker, a skip where SLURM is not installed, and the job ids in the test report.

The `slurm`-marked tests submit to a real scheduler (in CI: the single-node cluster started by
`.ci/slurm.sh`). They skip, with the reason, where `sbatch` is missing, where no controller answers
`sinfo`, or with `OTDATA_SLURM_TESTS=0` (on a busy cluster's login node, where the test jobs would
queue behind others). Each test records the SLURM job ids it submitted; the report lists them with the
states SLURM gives them, so the CI log shows which jobs ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

SUBMITTED: list[tuple[str, str, str]] = []   # (test name, SLURM job id, its state at the test's end)


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: submits jobs to a real SLURM scheduler (skipped "
                                       "without `sbatch` on PATH)")


def _why_not() -> str | None:
    """Why the slurm tests cannot run here, or None."""
    if os.environ.get("OTDATA_SLURM_TESTS") == "0":
        return "OTDATA_SLURM_TESTS=0"
    if not shutil.which("sbatch"):
        return ("SLURM is not installed here (no `sbatch` on PATH); CI runs these on a one-node "
                "cluster started by .ci/slurm.sh")
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as error:
        return f"`sinfo` did not answer ({error})"
    if done.returncode != 0 or not done.stdout.strip():
        return (f"SLURM is installed but no controller answers (`sinfo`: "
                f"{done.stderr.strip()[:120] or 'no partition'}); `bash .ci/slurm.sh start` starts one")
    return None


def pytest_collection_modifyitems(config, items):
    slurm_items = [item for item in items if "slurm" in item.keywords]
    reason = _why_not() if slurm_items else None
    if reason:
        for item in slurm_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def record_jobs(request):
    """`record_jobs(ids)`: list these SLURM job ids, with the state SLURM gives them when the test
    ends, under the test's name in the report."""
    mine: list[str] = []
    yield mine.extend
    states = _states()
    SUBMITTED.extend((request.node.name, i, states.get(i, "(no longer in the queue)")) for i in mine)


def _states() -> dict[str, str]:
    try:
        out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%r"], capture_output=True,
                             text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {line.split("|")[0]: line.split("|", 1)[1].replace("|", " ")
            for line in out.splitlines() if "|" in line}


def pytest_terminal_summary(terminalreporter):
    if not SUBMITTED:
        return
    terminalreporter.section("SLURM jobs submitted by the tests")
    for test, job, state in SUBMITTED:
        terminalreporter.line(f"{test}: job {job} {state}")
