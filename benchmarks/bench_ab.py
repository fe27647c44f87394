"""Before/after speed of the same benchmark rows, measured interleaved in one run.

Runs each row's command from two source trees of otdata (e.g. two ``git worktree`` checkouts), in
alternation (before, after, before, after, ...), each in a fresh process with that tree's
``src/`` on ``PYTHONPATH`` and that tree's own benchmark script. It prints the median wall and CPU
seconds of each side and their ratio (after / before). CPU seconds (the child's user + system
time) track the work done even when other jobs share the machine; wall time tracks the neighbours.

    git worktree add ../otdata-before <old commit>; git worktree add ../otdata-after <new commit>
    OTDATA_BEFORE=../otdata-before OTDATA_AFTER=../otdata-after \\
        python benchmarks/bench_ab.py --data-dir ../shared/data --repeats 3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from interleave import interleave

ROWS = {
    "OTDD gaussian, MNIST 2k vs USPS 2k, debiased (eps 0.1 absolute, tol 1e-3)":
        ["benchmarks/bench_distance.py", "--worker", "--solver", "ours", "--n1", "2000", "--n2", "2000",
         "--eps", "0.1", "--tol", "1e-3", "--debiased", "--threads", "2", "--data-dir", "{data}"],
    "flow, 2k particles, 784-d, 5 steps (eps 5 absolute)":
        ["benchmarks/bench_flow.py", "--skip-visual", "--n", "2000", "--timing-steps", "5", "--threads", "2",
         "--data-dir", "{data}"],
}


def run(tree: Path, argv: list[str], data: str) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process running ``argv`` from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "MPLBACKEND": "Agg"}
    cmd = [sys.executable, str(tree / argv[0]), *[a.replace("{data}", data) for a in argv[1:]]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=tree)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    trees = {"before": Path(os.environ["OTDATA_BEFORE"]), "after": Path(os.environ["OTDATA_AFTER"])}
    data = str(Path(args.data_dir).resolve())
    print("| row | before wall s | after wall s | wall ratio | before CPU s | after CPU s | CPU ratio | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for name, argv in ROWS.items():
        times, (lo, hi) = interleave({side: (lambda tree=tree: run(tree, argv, data)) for side, tree in trees.items()},
                                     args.repeats)
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
        (wb, cb), (wa, ca) = med["before"], med["after"]
        print(f"| {name} | {wb:.2f} | {wa:.2f} | {wa / wb:.2f} | {cb:.2f} | {ca:.2f} | {ca / cb:.2f} | "
              f"{lo:.1f}-{hi:.1f} |", flush=True)


if __name__ == "__main__":
    main()
