"""otdata against the reference OTDD code (github.com/microsoft/otdd), side by side.

Set-up (once; see ``benchmarks/setup_reference_otdd.sh`` for what it changes and installs)::

    git clone https://github.com/microsoft/otdd /path/to/otdd
    export OTDD_REFERENCE_DIR=/path/to/otdd
    export OTDD_REFERENCE_DEPS=/path/to/otdd-deps      # optional: keep its packages out of the venv
    bash benchmarks/setup_reference_otdd.sh

Then::

    python benchmarks/bench_reference.py --reps 2                       # every row
    python benchmarks/bench_reference.py --cases exact-2k --reps 3      # one row

Each measurement is a fresh process; runs alternate (reference, otdata, reference, ...) so that
both see the same load; the table gives the median seconds of each, the peak RSS of the process
(data loading included), the value and the ratio reference / otdata. Data: MNIST train vs USPS
train (resized to 28 x 28, pixels in [0, 1]) from ``--data-dir``.

**Equal problems.** The reference's outer cost is ``(||x - x'||^2 + W(y, y')) / 2`` (GeomLoss' p = 2
convention, applied to the label term too) with absolute ``entreg`` (default 0.1), and it reports
the debiased Sinkhorn divergence ``S_eps``. otdata's cost is ``||x - x'||^2 + W(y, y')``, twice
that, so it runs at twice the epsilon (``relative=False, epsilon=0.2``): the same problem scaled by
2, whose ``divergence / 2`` is the number compared (the JSON lines also carry its transport cost
``<pi, C> / 2``). The reference runs in float64
(``precision="double"``): in float32 its spectral square roots fail on real MNIST covariances.
otdata runs at its default precision. For the ``exact`` rows the label distances differ by
construction: the reference solves each class pair with a GeomLoss Sinkhorn at ``entreg`` on the
full squared distance (its ``OT_eps``, entropy term included), otdata with its exact-label solver
(``settings["label_solver"]``, printed), within 1 % of exact ``W_2^2``.

Rows: ``gaussian-2k`` (MNIST 2,000 vs USPS 2,000, gaussian labels, debiased), ``exact-2k``
(the same with exact label distances, 1 thread), ``gaussian-10k`` (MNIST 10,000 vs USPS 7,291,
debiased), ``flow-2k`` (one OTDD gradient-flow step of 2,000 USPS particles toward 2,000 MNIST
images, gaussian labels; the reference's ``OTDD_Gradient_Flow`` with ``use_torchoptim=True``,
as its default manual update reads an attribute its constructor never sets; timed: one step after
the initial evaluation). ``--labels-only`` times only the exact label-distance matrices (the
three of a debiased distance) instead of the whole distance.
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

CASES = {  # name: (label distance, n1, n2, debiased, threads or 0 for the default)
    "gaussian-2k": ("gaussian", 2000, 2000, True, 0),
    "exact-2k": ("exact", 2000, 2000, True, 1),
    "gaussian-10k": ("gaussian", 10000, 7291, True, 0),
    "flow-2k": ("flow", 2000, 2000, True, 0),
}
ENTREG = 0.1


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load(args, n1, n2):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_fullsize import load

    return load(args.data_dir, "usps", n1, n2)


def _datasets(X1, y1, X2, y2):
    from torch.utils.data import TensorDataset

    d1, d2 = TensorDataset(X1, y1), TensorDataset(X2, y2)
    d1.targets, d2.targets = y1, y2  # what the reference reads the labels from
    return d1, d2


def worker_reference(args):
    import logging

    import torch

    logging.disable(logging.WARNING)
    kind, n1, n2, debiased, threads = CASES[args.case]
    if threads:
        torch.set_num_threads(threads)
    from otdd.pytorch.distance import DatasetDistance

    X1, y1, X2, y2 = _load(args, n1, n2)
    X1, X2 = X1.double(), X2.double()
    torch.manual_seed(0)
    common = dict(debiased_loss=debiased, p=2, entreg=ENTREG, device="cpu", precision="double", verbose=0)
    extra = {}
    if kind == "flow":
        from otdd.pytorch.flows import OTDD_Gradient_Flow

        Xs, ys, Xt, yt = X2, y2, X1, y1  # USPS particles toward MNIST
        ds, dt = _datasets(Xs, ys, Xt, yt)
        fl = OTDD_Gradient_Flow(ds, dt, method="xonly", step_size=0.1, steps=1, use_torchoptim=True,
                                precision="double", entreg=ENTREG, device="cpu")
        t = time.perf_counter()
        fl.init()
        extra["init_s"] = time.perf_counter() - t
        t = time.perf_counter()
        value = fl.step(1)
        secs = time.perf_counter() - t
    else:
        d1, d2 = _datasets(X1, y1, X2, y2)
        inner = "gaussian_approx" if kind == "gaussian" else "exact"
        t = time.perf_counter()
        dd = DatasetDistance(d1, d2, inner_ot_method=inner, **common)
        if args.labels_only:
            dd._get_label_distances()
            value = float("nan")
        else:
            value = float(dd.distance(maxsamples=max(n1, n2)))
        secs = time.perf_counter() - t
    print(json.dumps({"seconds": secs, "value": value, "rss_mb": _rss_mb(), "solver": "geomloss", **extra}))


def worker_otdata(args):
    import torch

    kind, n1, n2, debiased, threads = CASES[args.case]
    if threads:
        torch.set_num_threads(threads)
    from otdata.distance import DatasetDistance

    X1, y1, X2, y2 = _load(args, n1, n2)
    torch.manual_seed(0)
    kw = dict(p=2, debiased=debiased, epsilon=2 * ENTREG, relative=False)  # otdd's problem, times 2
    extra = {}
    if kind == "flow":
        from otdata.flows import DatasetFlow

        Xs, ys, Xt, yt = X2, y2, X1, y1
        flow = DatasetFlow(target=(Xt, yt), labels="fixed", step_size=0.1, steps=2, progress=False,
                           distance=dict(label_distance="gaussian", **kw), label_update_every=1,
                           correspondence=None, fidelity=False)  # the reference's free OTDD flow
        t = time.perf_counter()
        r = flow.run(Xs, ys)
        extra["run_s"] = time.perf_counter() - t
        secs = r.history[1]["seconds"]  # the second step: the first one also binds the target
        value = r.history[0]["objective"] / 2  # at the initial particles, as the reference reports
        solver = "gaussian"
    elif args.labels_only:
        from otdata.distance import exact_label_distances

        C = int(max(y1.max(), y2.max())) + 1
        t = time.perf_counter()
        W12 = exact_label_distances(X1.double(), y1, C, X2.double(), y2, C)
        exact_label_distances(X1.double(), y1, C, X1.double(), y1, C, symmetric=True)
        exact_label_distances(X2.double(), y2, C, X2.double(), y2, C, symmetric=True)
        secs = time.perf_counter() - t
        value, solver = float(W12.mean()), DatasetDistance("exact").label_solver()
    else:
        t = time.perf_counter()
        r = DatasetDistance(kind, **kw)(X1, y1, X2, y2)
        secs = time.perf_counter() - t
        value = (r.divergence if r.divergence is not None else r.value) / 2
        extra.update(transport_cost=r.value / 2, iters=r.n_iter, converged=r.converged)
        solver = r.settings.get("label_solver", kind)
    print(json.dumps({"seconds": secs, "value": value, "rss_mb": _rss_mb(), "solver": solver, **extra}))


def run(which: str, case: str, args) -> dict:
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    if which == "reference":
        ref = os.environ.get("OTDD_REFERENCE_DIR")
        paths = [os.environ["OTDD_REFERENCE_DEPS"]] if os.environ.get("OTDD_REFERENCE_DEPS") else []
        env["PYTHONPATH"] = os.pathsep.join(paths + [ref])
    else:
        env["PYTHONPATH"] = str(ROOT / "src")
    cmd = [sys.executable, __file__, "--worker", which, "--case", case, "--data-dir", args.data_dir,
           "--n1", str(args.n1), "--n2", str(args.n2)]
    if args.labels_only:
        cmd.append("--labels-only")
    out = json_worker(cmd, env, ROOT)
    print(f"<!-- {case} {which}: {json.dumps(out)} -->", file=sys.stderr, flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only", choices=["reference", "otdata"], help="run one side (for profiling)")
    ap.add_argument("--labels-only", action="store_true",
                    help="time the exact label-distance matrices alone (exact-2k)")
    ap.add_argument("--n1", type=int, default=0, help="override the row's MNIST size (a quick check)")
    ap.add_argument("--n2", type=int, default=0, help="override the row's USPS size")
    ap.add_argument("--worker", choices=["reference", "otdata"])
    ap.add_argument("--case", default="gaussian-2k")
    args = ap.parse_args()
    if args.n1 or args.n2:
        for k, (kind, n1, n2, deb, th) in list(CASES.items()):
            CASES[k] = (kind, args.n1 or n1, args.n2 or n2, deb, th)
    if args.worker:
        return (worker_reference if args.worker == "reference" else worker_otdata)(args)
    if args.only != "otdata" and not os.environ.get("OTDD_REFERENCE_DIR"):
        sys.exit("set OTDD_REFERENCE_DIR to a checkout of microsoft/otdd prepared by "
                 "benchmarks/setup_reference_otdd.sh (see this file's docstring)")
    sides = [args.only] if args.only else ["reference", "otdata"]
    print("| row | code | seconds (median; runs) | peak RSS MB | value | label solver | reference / otdata | "
          "load avg |\n|---|---|---|---|---|---|---|---|", flush=True)
    for case in args.cases.split(","):
        res, (lo, hi) = interleave({side: (lambda side=side: run(side, case, args)) for side in sides}, args.reps)
        med = {}
        for side in sides:
            ok = [r for r in res[side] if "error" not in r]
            if not ok:
                print(f"| {case} | {side} | error: {res[side][0]['error']} | | | | | |", flush=True)
                continue
            med[side] = statistics.median(r["seconds"] for r in ok)
            runs = ", ".join(f"{r['seconds']:.2f}" for r in ok)
            ratio = ""
            if side == "otdata" and "reference" in med:
                ratio = f"**{med['reference'] / med['otdata']:.1f}x**"
            print(f"| {case} | {side} | {med[side]:.2f} ({runs}) | {max(r['rss_mb'] for r in ok):.0f} | "
                  f"{ok[-1]['value']:.4f} | {ok[-1]['solver']} | {ratio} | {lo:.1f}-{hi:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
