"""OTDD benchmark: MNIST vs USPS (d=784), ours vs POT and GeomLoss, full-size run, scaling.

Usage: python benchmarks/bench_distance.py [--data-dir ../shared/data] [--part compare|ours|scaling|all]
       [--sizes 1000,2000,...]   (prints a markdown table; the numbers live in benchmarks/RESULTS.md)

Fairness: all three solve entropic OT on the *same* augmented cost
C = ||x - x'||^2 + W2^2(class, class') (label distances computed once, by us) at the same
absolute epsilon. POT ``sinkhorn2(method='sinkhorn_log')`` (torch float32 inputs) returns the
transport cost <pi, C>, compared with our ``value``. GeomLoss ``SamplesLoss('sinkhorn', p=2, blur=eps**(1/2))`` uses
eps = blur**p and, with its default cost, C/2; we pass the full cost C as a custom cost so its
epsilon is exactly eps, and compare its debiased output with our ``divergence``.
Peak memory: ru_maxrss of a fresh subprocess per measurement.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(data_dir: str, n_mnist: int, n_usps: int):
    import torch
    import torchvision

    m = torchvision.datasets.MNIST(data_dir, train=True, download=False)
    Xm = m.data[:n_mnist].float().div(255).flatten(1)
    ym = m.targets[:n_mnist].long()
    u = torchvision.datasets.USPS(root=str(Path(data_dir) / "USPS"), train=True, download=False)
    Xu = torch.as_tensor(u.data[:n_usps]).float().div(255).unsqueeze(1)
    Xu = torch.nn.functional.interpolate(Xu, size=(28, 28), mode="bilinear", antialias=True).flatten(1)
    yu = torch.as_tensor(u.targets[:n_usps]).long()
    return Xm, ym, Xu, yu


def worker(args):
    import torch

    from otdata.distance import DatasetDistance

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    Xm, ym, Xu, yu = load(args.data_dir, args.n1, args.n2)
    out = {"n1": len(Xm), "n2": len(Xu)}
    dd = DatasetDistance("gaussian", p=2, epsilon=args.eps, relative=False, debiased=args.debiased, tol=args.tol,
                         max_iter=args.max_iter)
    if args.solver == "ours":
        t = time.perf_counter()
        src, tgt = dd.prepare(Xm, ym), dd.prepare(Xu, yu)
        t_prep = time.perf_counter() - t
        r = dd(src, tgt)
        total = time.perf_counter() - t
        # what the other solvers get for free: statistics and the label-distance matrices
        t = time.perf_counter()
        dd.label_distances(src, tgt)
        if args.debiased:
            dd.label_distances(src, src), dd.label_distances(tgt, tgt)
        t_w = time.perf_counter() - t
        out.update(seconds=total, ot_seconds=total - t_prep - t_w, value=r.value, entropic=r.entropic,
                   divergence=r.divergence, iters=r.n_iter, backend=r.backend)
    else:
        src, tgt = dd.prepare(Xm, ym), dd.prepare(Xu, yu)
        W = dd.label_distances(src, tgt).float()
        W11, W22 = dd.label_distances(src, src).float(), dd.label_distances(tgt, tgt).float()
        from otdata.ot import sqeuclidean

        t = time.perf_counter()
        if args.solver == "pot":
            import ot

            # torch float32 inputs: POT runs on its torch backend, same precision and BLAS as ours
            def C(a, b, Wab, la, lb):
                return sqeuclidean(a, b) + Wab[la][:, lb]

            n, m = len(Xm), len(Xu)
            wa, wb = torch.full((n,), 1 / n), torch.full((m,), 1 / m)
            kw = dict(method="sinkhorn_log", stopThr=args.tol, numItermax=args.max_iter)
            # sinkhorn2 returns the transport cost <pi, C> of its entropic plan
            out["value"] = float(ot.sinkhorn2(wa, wb, C(Xm, Xu, W, src.labels, tgt.labels), args.eps, **kw))
            if args.debiased:  # the two self terms a debiased computation needs
                ot.sinkhorn2(wa, wa, C(Xm, Xm, W11, src.labels, src.labels), args.eps, **kw)
                ot.sinkhorn2(wb, wb, C(Xu, Xu, W22, tgt.labels, tgt.labels), args.eps, **kw)
        else:
            from geomloss import SamplesLoss

            # labels ride along as the last coordinate; the custom cost rebuilds C exactly
            xa = torch.cat([Xm, src.labels[:, None].float()], 1)
            xb = torch.cat([Xu, tgt.labels[:, None].float() + 10], 1)
            Wbig = torch.zeros(20, 20)
            Wbig[:10, 10:], Wbig[10:, :10], Wbig[:10, :10], Wbig[10:, 10:] = W, W.T, W11, W22

            def cost(a, b):
                la, lb = a[..., -1].long(), b[..., -1].long()
                fa, fb = a[..., :-1], b[..., :-1]
                d = (fa * fa).sum(-1)[..., :, None] + (fb * fb).sum(-1)[..., None, :] - 2 * fa @ fb.transpose(-1, -2)
                return d.clamp_min(0) + Wbig[la[..., :, None], lb[..., None, :]]

            loss = SamplesLoss("sinkhorn", p=2, blur=args.eps ** 0.5, scaling=args.scaling, debias=args.debiased,
                               cost=cost, backend="tensorized")
            out["divergence" if args.debiased else "entropic"] = float(loss(xa, xb))
        out["seconds"] = time.perf_counter() - t
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run(args, **kw) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--data-dir", args.data_dir]
    for k, v in kw.items():
        if isinstance(v, bool):
            if v:
                cmd.append(f"--{k}")
        else:
            cmd += [f"--{k}", str(v)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"rc={p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--solver", default="ours")
    ap.add_argument("--n1", type=int, default=2000)
    ap.add_argument("--n2", type=int, default=2000)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--debiased", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--scaling", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--part", choices=["compare", "ours", "scaling", "all"], default="all")
    ap.add_argument("--sizes", default="1000,2000,5000,10000,20000,60000")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    lines = ["| run | solver | n1 x n2 | seconds (OT only) | peak RSS MB | iters | value <pi,C> | entropic OT_eps | divergence S_eps |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(name, solver, r):
        f = lambda v, s="{:.5g}": "-" if v is None else s.format(v)  # noqa: E731
        line = (f"| {name} | {solver} | {r.get('n1', '?')} x {r.get('n2', '?')} | {f(r.get('seconds'), '{:.1f}')}"
                + (f" ({r['ot_seconds']:.1f})" if "ot_seconds" in r else "") + f" | "
                f"{f(r.get('peak_rss_mb'), '{:.0f}')} | {f(r.get('iters'), '{}')} | {f(r.get('value'), '{:.6f}')} | "
                f"{f(r.get('entropic'), '{:.6f}')} | {f(r.get('divergence'), '{:.6f}')} |"
                + (f" {r['error']}" if "error" in r else ""))
        lines.append(line)
        print(line, flush=True)

    print("\n".join(lines), flush=True)
    common = dict(n1=2000, n2=2000, eps=0.1, debiased=True)
    if args.part in ("compare", "ours", "all"):
        row("2k vs 2k, debiased, tol 1e-3", "ours", run(args, solver="ours", tol=1e-3, **common))
        row("2k vs 2k, debiased, scaling 0.5", "GeomLoss", run(args, solver="geomloss", scaling=0.5, **common))
    if args.part in ("compare", "all"):
        pot = dict(common, debiased=False)
        row("2k vs 2k, OT(a,b) only, stopThr 1e-3, <= 300 it", "POT",
            run(args, solver="pot", tol=1e-3, **pot, **{"max-iter": 300}))
        row("2k vs 2k, debiased, tol 1e-5 (reference)", "ours", run(args, solver="ours", tol=1e-5, **common,
                                                                     **{"max-iter": 20000}))
        row("2k vs 2k, debiased, scaling 0.9", "GeomLoss", run(args, solver="geomloss", scaling=0.9, **common))
    if args.part in ("scaling", "all"):
        for n in [int(v) for v in args.sizes.split(",")]:
            r = run(args, solver="ours", n1=n, n2=min(n, 7291), eps=0.1, tol=1e-3)
            row(f"scaling n={n}, not debiased, tol 1e-3", "ours", r)
    table = "\n".join(lines)
    if not args.no_write:
        print(f"\n(command: python benchmarks/bench_distance.py --part {args.part}; paste the table into RESULTS.md)")
    return table


if __name__ == "__main__":
    main()
