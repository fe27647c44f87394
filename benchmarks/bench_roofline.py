"""Roofline of the hot kernels: achieved rate next to the machine's measured peak, in one run.

Usage::

    python benchmarks/bench_roofline.py                  # CPU, MNIST 10,000 vs USPS 7,291
    python benchmarks/bench_roofline.py --device cuda    # the same table on a GPU
    python benchmarks/bench_roofline.py --n1 4000 --n2 4000 --reps 3

Peaks (measured here, same process): float32 GEMM (``(n1, d) x (d, n2)``, GFLOP/s), ``exp``
(G elements/s) and matrix-vector products on a kernel that leaves the cache (GB/s). Kernels (real
data: MNIST train vs USPS train resized to 28 x 28, gaussian label costs):

* cost build: one ``PointCloudCost.dense`` (``2 n1 n2 d`` flops);
* dense Sinkhorn iteration: two mat-vecs over the stored ``n1 x n2`` float32 kernel (``8 n1 n2``
  bytes);
* log-domain pass: one row log-sum-exp over recomputed cost blocks (GEMM + ``n1 n2`` exps), whose
  roof is the GEMM and the exps in sequence, ``1 / (2 d / GEMM + 1 / exp)`` elements/s;
* sparse-backend support pass: the one pass of GEMM + exp over the full cost that selects the kept
  entries and bounds the mass left out (same roof; from the coarse potentials);
* Bures cross terms: all ``10 x 10`` class pairs (eigen-solves of the smaller Gram matrix, counted
  as ``(4/3) k^3 + 4 k^2 d`` flops per pair of sizes ``k <= d``);
* flow step: one OTDD flow step, 2,000 MNIST particles toward 2,000 MNIST images (its four
  ``2 n^2 d`` matmuls counted).

Every row is the median of ``--reps`` runs; the 1-minute load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def timed(fn, reps: int, device: str) -> float:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()
    sync()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n1", type=int, default=10000)
    ap.add_argument("--n2", type=int, default=7291)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-flow", action="store_true")
    args = ap.parse_args()
    from bench_fullsize import load

    from otdata.distance import DatasetDistance
    from otdata.ot.gaussian import bures_cross_terms
    from otdata.ot.engine.online import RowBlocks
    from otdata.ot.engine.sparse import coarse_potentials
    from otdata.ot.engine.support import DEFAULT_K, DEFAULT_THRESHOLD, select_support
    from otdata.ot.sinkhorn import coarse_solve

    dev, reps = args.device, args.reps
    load0 = os.getloadavg()[0]
    X1, y1, X2, y2 = load(args.data_dir, "usps", args.n1, args.n2)
    X1, X2 = X1.to(dev), X2.to(dev)
    n1, n2, d = len(X1), len(X2), X1.shape[1]
    rows = []

    def row(kernel, seconds, amount, unit, peak, peak_name):
        rate = amount / seconds
        rows.append(f"| {kernel} | {seconds * 1e3:.1f} | {rate:.3g} {unit} | {peak:.3g} {unit} ({peak_name}) | "
                    f"{100 * rate / peak:.0f} % |")
        print(rows[-1], flush=True)

    # -- peaks
    A = torch.rand(n1, d, device=dev)
    B = torch.rand(n2, d, device=dev)
    t = timed(lambda: A @ B.T, reps, dev)
    gemm = 2 * n1 * n2 * d / t / 1e9
    E = torch.rand(n1, n2, device=dev)
    out = torch.empty_like(E)  # into a buffer: a fresh 64 MB result would time its page faults
    t = timed(lambda: torch.exp(E, out=out), reps, dev)
    exp_rate = n1 * n2 / t / 1e9
    v, w = torch.rand(n2, device=dev), torch.rand(n1, device=dev)
    # both products of an iteration, K v and K^T u: the faster one is the bandwidth reached
    t = min(timed(lambda: E @ v, reps * 3, dev), timed(lambda: w @ E, reps * 3, dev))
    mv_bw = 4 * n1 * n2 / t / 1e9
    print(f"peaks on {dev}: GEMM {gemm:.1f} GFLOP/s, exp {exp_rate:.2f} G elem/s, mat-vec {mv_bw:.1f} GB/s "
          f"(load average {load0:.1f})", flush=True)
    del E, out

    dd = DatasetDistance("gaussian", p=2, debiased=True)
    src, tgt = dd.prepare(X1, y1), dd.prepare(X2, y2)
    W = dd.label_distances(src, tgt)
    cost = dd._cost(src, tgt, W)
    a = torch.full((n1,), 1 / n1, device=dev)
    b = torch.full((n2,), 1 / n2, device=dev)
    eps = 0.01 * cost.mean_value(a, b)
    print("| kernel | ms | achieved | peak (measured) | of peak |\n|---|---|---|---|---|", flush=True)
    t = timed(lambda: cost.dense(), reps, dev)
    row(f"cost build {n1}x{n2}x{d}", t, 2 * n1 * n2 * d / 1e9, "GFLOP/s", gemm, "GEMM")
    K = cost.dense()
    u = torch.rand(n1, device=dev)
    t = timed(lambda: (K @ v, K.T @ u), reps * 3, dev)
    row("dense Sinkhorn iteration (2 mat-vecs)", t, 8 * n1 * n2 / 1e9, "GB/s", mv_bw, "mat-vec")
    del K
    eng = RowBlocks(cost, 1 << 23)
    h = torch.zeros(n2, device=dev)
    # a pass that builds cost blocks by GEMM and exponentiates them: its roof is both in sequence
    roof = 1 / (2 * d / gemm + 1 / exp_rate)
    t = timed(lambda: eng.row_lse(h, eps), reps, dev)
    row("log-domain pass (GEMM + exp)", t, n1 * n2 / 1e9, "G elem/s", roof, "GEMM then exp")
    f0, g0, _ = coarse_potentials(cost, a, b, eps, False, 1 << 23, coarse_solve)
    t = timed(lambda: select_support(cost, f0, g0, eps, DEFAULT_K, DEFAULT_THRESHOLD, 1 << 23), reps, dev)
    row("sparse-backend support pass (GEMM + exp)", t, n1 * n2 / 1e9, "G elem/s", roof, "GEMM then exp")
    F1, F2 = src.stats.factors, tgt.stats.factors
    flops = 0.0
    for f1 in F1:
        for f2 in F2:
            k = min(f1.shape[0], f2.shape[0], d)
            flops += 4 / 3 * k**3 + 4 * k * k * d
    t = timed(lambda: bures_cross_terms(F1, F2), reps, dev)
    row(f"Bures cross terms 10x10 (float64, k<={min(d, max(f.shape[0] for f in F1))})", t, flops / 1e9,
        "GFLOP/s", gemm / 2, "GEMM/2 for float64")
    if not args.skip_flow:
        from otdata.flows import DatasetFlow

        n = min(2000, n1 // 2)
        Xt, yt = X1[:n], y1[:n]
        Xs, ys = X1[n:2 * n], y1[n:2 * n]
        flow = DatasetFlow(target=(Xt, yt), labels="fixed", step_size=0.25, steps=reps + 1, clamp=[0, 1],
                           progress=False, distance={"epsilon": 5.0, "relative": False}, label_update_every=5,
                           correspondence=None, fidelity=False)
        r = flow.run(Xs, ys)
        secs = sorted(h["seconds"] for h in r.history[1:-1]) or [r.history[0]["seconds"]]
        row(f"flow step, {n} particles, d={d}", statistics.median(secs), 4 * 2 * n * n * d / 1e9, "GFLOP/s",
            gemm, "GEMM")
    print(f"\n(device {dev}, torch threads {torch.get_num_threads()}, load average {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
