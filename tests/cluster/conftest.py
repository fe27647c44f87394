"""The `slurm` marker, a skip where SLURM is not installed, and the job ids in the test report.

The `slurm`-marked tests submit to a real scheduler (in CI: the single-node cluster started by
`.ci/slurm.sh`). Each test records the SLURM job ids it submitted; the report lists them with the
states SLURM gives them, so the CI log shows which jobs ran.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

SUBMITTED: list[tuple[str, str]] = []   # (test name, SLURM job id)


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: submits jobs to a real SLURM scheduler (skipped "
                                       "without `sbatch` on PATH)")


def pytest_collection_modifyitems(config, items):
    if shutil.which("sbatch"):
        return
    skip = pytest.mark.skip(reason="SLURM is not installed here (no `sbatch` on PATH); CI runs "
                                   "these on a one-node cluster started by .ci/slurm.sh")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def record_jobs(request):
    """`record_jobs(ids)`: list these SLURM job ids under the test's name in the report."""
    return lambda ids: SUBMITTED.extend((request.node.name, i) for i in ids)


def _states() -> dict[str, str]:
    try:
        out = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%r"], capture_output=True,
                             text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {line.split("|")[0]: line.split("|", 1)[1] for line in out.splitlines() if "|" in line}


def pytest_terminal_summary(terminalreporter):
    if not SUBMITTED:
        return
    states = _states()
    terminalreporter.section("SLURM jobs submitted by the tests")
    for test, job in SUBMITTED:
        terminalreporter.line(f"{test}: job {job} {states.get(job, '(no longer in the queue)')}")
