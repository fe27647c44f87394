"""Run each way a SLURM sweep can go wrong and print, per case, the command, the time until the
submitter says what happened (its exit) and what it says, as a Markdown table.

    python experiments/cluster/failure_cases.py > experiments/cluster/cases.md

Needs a SLURM cluster (`sbatch` on PATH; `bash .ci/slurm.sh start` makes a one-node one). The
jobs are tiny distances on generated data (tests/fixtures.py), one CPU each; every case is bounded
by the launcher (no case waits for a human).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fixtures import write_mnist_like, write_usps  # noqa: E402

TINY = "task=distance task.n_source=40 task.n_target=40"
CPU = ("hydra/launcher=slurm_cpu hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=1 "
       "hydra.launcher.poll_s=1")
CASES = [  # (case, overrides, what to do once the job ids are printed)
    ("shipped GPU defaults on a CPU node", f"hydra/launcher=slurm {TINY}", None),
    ("the same, request check off (sbatch decides)",
     f"hydra/launcher=slurm hydra.launcher.check_request=false {TINY}", None),
    ("a request that would pend forever (8 CPUs on a smaller node)",
     f"{CPU} hydra.launcher.cpus_per_task=8 {TINY}", None),
    ("the same, request check off (pends with reason PartitionConfig)",
     f"{CPU} hydra.launcher.check_request=false hydra.launcher.cpus_per_task=8 {TINY}", None),
    ("a job that raises", f"{CPU} {TINY} task.split=bogus", None),
    ("a job whose data is missing", f"{CPU} {TINY} data@source=kmnist", None),
    ("a job cancelled with scancel", f"{CPU} {TINY}", "scancel"),
    ("Ctrl-C on the submitter", f"{CPU} {TINY}", "sigint"),
]
IDS = re.compile(r"submitted SLURM job\(s\) ([\d_, ]+);")


def message(output: str, root: Path) -> str:
    """The lines of the submitter's last word: from the first `otdata:`/error line to the end
    (the temporary folder shown as `<tmp>`)."""
    output = output.replace(str(root), "<tmp>")
    lines = [re.sub(r"^\[[^\]]+\]\[[^\]]+\]\s*", "", l) for l in output.strip().splitlines()]
    for i, line in enumerate(lines):
        if line.startswith(("otdata:", "Error", "interrupted", "submitit.core")) or "Traceback" in line:
            return "<br>".join(l.replace("|", "\\|") for l in lines[i:i + 8])
    return "<br>".join(lines[-4:])


def run(overrides: str, action: str | None, cwd: Path, env: dict) -> tuple[float, int, str]:
    args = [sys.executable, "-m", "otdata.cli", "-m", *overrides.split(), "hydra.sweep.dir=sweep"]
    start = time.monotonic()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    if action:
        for line in process.stdout:
            output.append(line)
            match = IDS.search(line)
            if match:
                start = time.monotonic()   # time from the action to the message
                job = match.group(1).split(",")[0].split("_")[0]
                if action == "scancel":
                    subprocess.run(["scancel", job], check=True, timeout=20)
                else:
                    process.send_signal(signal.SIGINT)
                break
    try:
        rest, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        rest = "(no answer in 300 s: killed)"
    return time.monotonic() - start, process.returncode, "".join(output) + rest


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_mnist_like(root / "data", "MNIST")
        write_usps(root / "data")                    # no KMNIST: the missing-data case
        env = {**os.environ, "OTDATA_DATA_DIR": str(root / "data"), "MPLBACKEND": "Agg",
               "OTDATA_CACHE_DIR": str(root / "cache"), "WANDB_MODE": "offline",
               "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        print("| case | command (`otdata -m ...`) | seconds to the message | exit | message |")
        print("|---|---|---|---|---|")
        for i, (case, overrides, action) in enumerate(CASES):
            cwd = root / f"case{i}"
            cwd.mkdir()
            seconds, code, output = run(overrides, action, cwd, env)
            shown = overrides.replace(TINY, "<tiny distance>").replace(CPU, "<1-CPU slurm_cpu>")
            clock = f"{seconds:.0f}" + (f" (from the {action})" if action else "")
            print(f"| {case} | `{shown}` | {clock} | {code} | {message(output, root)} |", flush=True)


if __name__ == "__main__":
    main()
