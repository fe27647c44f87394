"""The epsilon table: is every OTDD number right or flagged, across relative epsilon and precision?

For USPS 500 vs MNIST 500 (pixels, costs ~50-300) and DBPedia 500 vs AG News 500 (sentence
embeddings, costs ~1-3), with the gaussian OTDD at relative epsilon 1e-3 .. 10 in float32 and
float64, it prints (and writes as Markdown with ``--out``): the OTDD value ``<pi, C>``, POT's exact
``emd2`` on the very same ground cost, their relative gap, whether every solve converged, the
cross term's iterations, the seconds, and whether the float32 coupling is finite with rows summing
to the marginals.

    python benchmarks/bench_epsilon.py --data-dir ../shared/data --models-dir ../shared/models \\
        --out benchmarks/epsilon_table.md
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from otdata.data import AGNewsDataModule, DBPediaDataModule, MNISTDataModule, USPSDataModule
from otdata.distance import DatasetDistance
from otdata.ot import ConvergenceWarning, emd2
from otdata.tables import to_markdown

RELATIVE_EPS = (1e-3, 1e-2, 0.05, 0.1, 1.0, 10.0)


def pairs(data_dir: str, models_dir: str, n: int, cache_dir: str):
    usps = USPSDataModule(data_dir, max_samples=n).tensors(flatten=True)
    mnist = MNISTDataModule(data_dir, max_samples=n).tensors(flatten=True)
    yield "USPS vs MNIST (pixels)", usps, mnist
    enc = f"{models_dir}/all-MiniLM-L6-v2"
    dbp = DBPediaDataModule(data_dir, encoder=enc, cache_dir=cache_dir, max_samples=n).tensors("train")
    ag = AGNewsDataModule(data_dir, encoder=enc, cache_dir=cache_dir, max_test_samples=n).tensors("test")
    yield "DBPedia vs AG News (embeddings)", dbp, ag


def row(name, src, tgt, rel, dtype):
    dd = DatasetDistance(epsilon=rel, dtype=dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        r = dd(*src, *tgt)
        seconds = time.perf_counter() - t0
    ot = r._solved()
    C = ot.cost.dense().double()
    exact = emd2(C)
    P = r.coupling()
    finite = bool(torch.isfinite(P).all())
    rows_ok = float((P.sum(1).double() - ot.a.double()).abs().sum()) < 1e-3
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {
        "pair": name, "relative eps": rel, "dtype": str(dtype).replace("torch.", ""),
        "absolute eps": round(r.epsilon, 4), "value <pi,C>": round(r.value, 4), "emd2": round(exact, 4),
        "rel. gap": f"{r.value / exact - 1:+.2e}", "converged": r.converged, "warned": warned,
        "iterations": r.n_iter, "seconds": round(seconds, 2), "coupling finite": finite, "rows = a": rows_ok,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--models-dir", default="../shared/models")
    ap.add_argument("--cache-dir", default=".cache")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--out", default=None, help="also write the table as Markdown here")
    args = ap.parse_args()
    rows = []
    for name, src, tgt in pairs(args.data_dir, args.models_dir, args.n, args.cache_dir):
        for rel in RELATIVE_EPS:
            for dtype in (torch.float32, torch.float64):
                rows.append(row(name, src, tgt, rel, dtype))
                print(rows[-1], flush=True)
    table = to_markdown(rows)
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
