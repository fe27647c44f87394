"""Before/after speed of ``DatasetDistance``: the same problems on two source trees, interleaved.

Usage::

    git worktree add ../otdata-before <commit>
    python benchmarks/bench_speed.py --before-src ../otdata-before/src --reps 3
    python benchmarks/bench_speed.py --before-src ../otdata-before/src --cases gaussian-2k,exact-2k

Each measurement is a fresh process (``PYTHONPATH`` = the tree's ``src``) running one
``DatasetDistance`` call at its defaults on MNIST train vs USPS train (resized to 28 x 28); runs
alternate before/after so that both see the same load. Prints, per case, the median seconds of
each tree, their ratio, the values and the 1-minute load average over the run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from interleave import interleave, json_worker

ROOT = Path(__file__).resolve().parents[1]

CASES = {  # name: (label_distance, n1, n2, debiased)
    "gaussian-2k": ("gaussian", 2000, 2000, True),
    "exact-2k": ("exact", 2000, 2000, False),
    "gaussian-10k": ("gaussian", 10000, 7291, True),
}


def worker(args):
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_fullsize import load

    from otdata.distance import DatasetDistance

    kind, n1, n2, debiased = CASES[args.case]
    X1, y1, X2, y2 = load(args.data_dir, "usps", n1, n2)
    torch.manual_seed(0)
    t = time.perf_counter()
    r = DatasetDistance(kind, p=2, debiased=debiased)(X1, y1, X2, y2)
    secs = time.perf_counter() - t
    print(json.dumps({"seconds": secs, "value": r.value, "divergence": r.divergence, "iters": r.n_iter,
                      "converged": r.converged, "label_solver": r.settings.get("label_solver", kind),
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(src: str, case: str, data_dir: str) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    return json_worker([sys.executable, __file__, "--worker", "--case", case, "--data-dir", data_dir], env, ROOT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--before-src", required=False)
    ap.add_argument("--cases", default="gaussian-2k,exact-2k")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--case", default="gaussian-2k")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    trees = {"after": str(ROOT / "src")}
    if args.before_src:
        trees = {"before": args.before_src, **trees}
    print("| case | tree | seconds (median, runs) | value | S_eps | iterations | converged | label solver | "
          "peak RSS MB | load avg |\n|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for case in args.cases.split(","):
        res, (lo, hi) = interleave({name: (lambda src=src: run(src, case, args.data_dir))
                                    for name, src in trees.items()}, args.reps)
        med = {}
        for name, rs in res.items():
            ok = [r for r in rs if "error" not in r]
            if not ok:
                print(f"| {case} | {name} | error: {rs[0]['error']} | | | | | | | |", flush=True)
                continue
            med[name] = statistics.median(r["seconds"] for r in ok)
            r = ok[-1]
            div = "-" if r["divergence"] is None else f"{r['divergence']:.4f}"
            runs = ", ".join(f"{x['seconds']:.1f}" for x in ok)
            print(f"| {case} | {name} | {med[name]:.2f} ({runs}) | "
                  f"{r['value']:.4f} | {div} | {r['iters']} | {r['converged']} | {r['label_solver']} | "
                  f"{max(x['rss_mb'] for x in ok):.0f} | {lo:.1f}-{hi:.1f} |", flush=True)
        if len(med) == 2:
            print(f"| {case} | **before / after** | **{med['before'] / med['after']:.2f}x** | | | | | | | |",
                  flush=True)


if __name__ == "__main__":
    main()
