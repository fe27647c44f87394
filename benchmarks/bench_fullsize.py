"""Full-size debiased OTDD: MNIST 60,000 vs USPS 7,291 or vs FashionMNIST 60,000, with progress and ETA.

Usage::

    python benchmarks/bench_fullsize.py --target usps              # MNIST train vs USPS train
    python benchmarks/bench_fullsize.py --target fashion           # MNIST train vs FashionMNIST train
    python benchmarks/bench_fullsize.py --target fashion --device cuda
    python benchmarks/bench_fullsize.py --n1 10000 --n2 7291       # smaller sizes
    python benchmarks/bench_fullsize.py --target fashion --n1 10000 --n2 10000 --backend sparse

Gaussian label distance, p = 2, debiased, ``DatasetDistance`` defaults (relative epsilon 0.01, tol
1e-4). The three OT problems are solved in turn (the two self terms first, cached on the prepared
datasets, then the cross term inside ``DatasetDistance.__call__``), each announced with the time
so far and an ETA from the entries per second of the problems already solved. Prints one markdown
row: wall time per phase, total, peak RSS (``ru_maxrss``; on CUDA also the peak allocated device
memory), the value, the divergence, iterations, backends and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def load(data_dir: str, target: str, n1: int, n2: int):
    from torchvision.datasets import MNIST, USPS, FashionMNIST

    m = MNIST(data_dir, train=True, download=False)
    X1, y1 = m.data[:n1].float().div(255).flatten(1), m.targets[:n1].long()
    if target == "usps":
        u = USPS(root=str(Path(data_dir) / "USPS"), train=True, download=False)
        X = torch.as_tensor(u.data[:n2]).float().div(255).unsqueeze(1)
        X2 = F.interpolate(X, size=(28, 28), mode="bilinear", antialias=True).clamp(0, 1).flatten(1)
        y2 = torch.as_tensor(u.targets[:n2]).long()
    else:
        f = FashionMNIST(data_dir, train=True, download=False)
        X2, y2 = f.data[:n2].float().div(255).flatten(1), f.targets[:n2].long()
    return X1, y1, X2, y2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--target", choices=["usps", "fashion"], default="usps")
    ap.add_argument("--n1", type=int, default=60000)
    ap.add_argument("--n2", type=int, default=0, help="target size (0: the full train split)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--backend", default="auto", help="Sinkhorn backend (auto: sparse when the cost is too big)")
    ap.add_argument("--only", choices=["self1", "self2", "cross"], default=None,
                    help="solve one of the three problems alone (profiling)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    # the solvers' own progress: sparse attempts and one line per full pass with the time left
    logging.getLogger("otdata.ot").setLevel(logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    from otdata.distance import DatasetDistance

    t0 = time.perf_counter()
    load1 = os.getloadavg()[0]

    mem = {"now": 0.0, "max": 0.0}
    page = os.sysconf("SC_PAGE_SIZE") / 2**20

    def sample():  # resident memory every 0.1 s: the peak of each phase, not only of the process
        while True:
            with open("/proc/self/statm") as fh:
                mem["now"] = int(fh.read().split()[1]) * page
            mem["max"] = max(mem["max"], mem["now"])
            time.sleep(0.1)

    if os.path.exists("/proc/self/statm"):
        threading.Thread(target=sample, daemon=True).start()

    def say(msg):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        phase = f", phase peak {mem['max']:5.0f} MB, now {mem['now']:5.0f} MB" if mem["max"] else ""
        mem["max"] = mem["now"]
        print(f"[{time.perf_counter() - t0:7.1f} s, peak RSS {peak:5.0f} MB{phase}] {msg}", file=sys.stderr,
              flush=True)

    X1, y1, X2, y2 = load(args.data_dir, args.target, args.n1, args.n2 or 60000)
    X1, X2 = X1.to(args.device), X2.to(args.device)
    n1, n2 = len(X1), len(X2)
    say(f"loaded MNIST {n1:,} x {args.target} {n2:,} on {args.device}")
    dd = DatasetDistance("gaussian", p=2, debiased=True, backend=args.backend)
    src, tgt = dd.prepare(X1, y1), dd.prepare(X2, y2)
    t_prep = time.perf_counter() - t0
    say(f"class statistics done ({t_prep:.1f} s)")
    W = dd.label_distances(src, tgt)
    cost = dd._cost(src, tgt, W)
    u1 = torch.full((n1,), 1 / n1, dtype=X1.dtype, device=X1.device)
    u2 = torch.full((n2,), 1 / n2, dtype=X1.dtype, device=X1.device)
    eps = dd.solver.absolute_epsilon(cost.mean_value(u1, u2))
    say(f"label distances done; absolute epsilon {eps:.4g}")

    phases = [("self term MNIST", n1 * n1, lambda: dd._self_term(src, eps)),
              (f"self term {args.target}", n2 * n2, lambda: dd._self_term(tgt, eps)),
              ("cross term", n1 * n2, lambda: dd(src, tgt))]
    if args.only:
        from otdata.ot import sinkhorn

        which = {"self1": 0, "self2": 1, "cross": 2}[args.only]
        name, units, _ = phases[which]
        c = cost if which == 2 else dd._cost(src, src, dd.label_distances(src, src)) if which == 0 else \
            dd._cost(tgt, tgt, dd.label_distances(tgt, tgt))
        say(f"{name} alone: {units:,} cost entries")
        t = time.perf_counter()
        r = sinkhorn(None, None, c, eps, dd.solver, symmetric=which < 2)
        say(f"{name} done in {time.perf_counter() - t:.1f} s: backend {r.backend}, {r.n_iter} iterations, "
            f"converged {r.converged}, marginal error {r.marginal_error:.2e}, entropic {float(r.entropic):.6f}, "
            f"<pi,C> {float(r.transport_cost):.6f}, peak RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, load {os.getloadavg()[0]:.1f}")
        return
    total_units = sum(u for _, u, _ in phases)
    done_units, solve_s, times, out = 0, 0.0, {}, {}
    for name, units, fn in phases:
        eta = f", ETA {solve_s / done_units * (total_units - done_units):.0f} s" if done_units else ""
        say(f"{name}: {units:,} cost entries{eta}")
        t = time.perf_counter()
        out[name] = fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times[name] = time.perf_counter() - t
        solve_s += times[name]
        done_units += units
        say(f"{name} done in {times[name]:.1f} s")
    r = out["cross term"]
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dev = (f", device peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
           if args.device.startswith("cuda") else "")
    sx, sy = out["self term MNIST"], out[f"self term {args.target}"]
    print("| pair | device | wall s (stats+labels / self 1 / self 2 / cross) | peak RSS MB | value <pi,C> | "
          "S_eps | iterations (xx, yy, xy) | backends | converged | max marginal error | load avg (start, end) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ph = " / ".join(f"{v:.1f}" for v in times.values())
    how = lambda x: x.backend + ("+full passes" if x.escalated else "")
    print(f"| MNIST {n1:,} vs {args.target} {n2:,} | {args.device} | **{wall:.1f}** ({t_prep:.1f}+ / {ph}) | "
          f"{rss:.0f}{dev} | {r.value:.4f} | {r.divergence:.4f} | {sx.n_iter}, {sy.n_iter}, {r.n_iter} | "
          f"{how(sx)}, {how(sy)}, {how(r._solved())} | {r.converged} | {r.marginal_error:.1e} | "
          f"{load1:.1f}, {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
