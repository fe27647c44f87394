"""Interleaved timing in fresh processes, shared by the side-by-side benchmarks.

``bench_reference.py`` (reference code vs otdata), ``bench_speed.py`` and ``bench_ab.py`` (two
source trees) compare two sides on a machine that other jobs may share. Each measurement runs in
a fresh process and the sides alternate (A, B, A, B, ...), so both see the same neighbours; the
tables then report medians, ratios and the range of the 1-minute load average seen.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Callable, TypeVar

T = TypeVar("T")


def json_worker(cmd: list[str], env: dict, cwd) -> dict:
    """Run one worker process; its result is the JSON object on the last line of its stdout, or
    ``{"error": <last line of its stderr>}`` when it failed."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if p.returncode:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def interleave(sides: dict[str, Callable[[], T]], reps: int) -> tuple[dict[str, list[T]], tuple[float, float]]:
    """``reps`` rounds of one measurement per side, in the order of ``sides``. Returns each side's
    results and the lowest and highest 1-minute load average seen (before, between and after)."""
    res: dict[str, list[T]] = {k: [] for k in sides}
    loads = [os.getloadavg()[0]]
    for _ in range(reps):
        for name, measure in sides.items():
            res[name].append(measure())
            loads.append(os.getloadavg()[0])
    return res, (min(loads), max(loads))
