"""Sliced OTDD benchmark: full-size speed and agreement with the OTDD over the *NIST pairs.

Usage: python benchmarks/bench_sliced.py [--data-dir ../shared/data] [--part full|agreement|all]
       [--projections 1000] [--n 2000] [--device cpu|cuda] [--threads 2] [--exact]
(prints markdown tables; the numbers live in benchmarks/RESULTS.md)

- full: MNIST train (60,000) vs FashionMNIST train (60,000), images in [0, 1], 784-d: time of each
  `prepare` (projection of every item on every slice, class moments, sorts) and of the pair, the
  value with its Monte Carlo standard error, peak RSS of the process.
- agreement: MNIST, USPS, FashionMNIST, EMNIST letters, KMNIST on seeded stratified subsamples of
  `--n` training items each; every unordered pair (10) with the Gaussian OTDD (`distance=gaussian`,
  the engine's defaults), with `--exact` the exact-label OTDD, and the sliced OTDD at 1,000 and 10,000
  slices: time per pair (matrix time / pairs, preparation included; wall and process CPU) and
  Spearman's ρ of each distance with the Gaussian OTDD over the pairs.
Runs unchanged on a GPU with `--device cuda` (timings synchronised).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NIST = ["mnist", "usps", "fashion_mnist", "emnist", "kmnist"]


def load(name: str, data_dir: str, n: int | None, seed: int = 0):
    from otdata.data import EMNISTDataModule, FashionMNISTDataModule, KMNISTDataModule, MNISTDataModule, USPSDataModule
    from otdata.data.subsample import sample

    cls = {"mnist": MNISTDataModule, "usps": USPSDataModule, "fashion_mnist": FashionMNISTDataModule,
           "emnist": EMNISTDataModule, "kmnist": KMNISTDataModule}[name]
    dm = cls(data_dir)
    X, y = dm.tensors("train", flatten=True)
    keep = sample(y, n, seed) if n is not None and n < len(y) else slice(None)
    return dm.name, X[keep].float(), y[keep]


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def full(args) -> None:
    from otdata.distance import SlicedDatasetDistance

    dd = SlicedDatasetDistance(n_projections=args.projections, device=args.device)
    rows, prepared = [], []
    for name in ("mnist", "fashion_mnist"):
        label, X, y = load(name, args.data_dir, None)
        sync(args.device)
        start, cpu = time.perf_counter(), time.process_time()
        prepared.append(dd.prepare(X.to(args.device), y.to(args.device), name=label))
        sync(args.device)
        rows.append((f"prepare {label} ({len(y):,} × {X.shape[1]})", time.perf_counter() - start,
                     time.process_time() - cpu))
    start, cpu = time.perf_counter(), time.process_time()
    res = dd(*prepared)
    sync(args.device)
    rows.append(("pair (merge of sorted slices)", time.perf_counter() - start, time.process_time() - cpu))
    print(f"\n| step ({args.projections} slices, {args.device}) | wall s | CPU s (process) |\n|---|---|---|")
    for step, t, c in rows:
        print(f"| {step} | {t:.1f} | {c:.1f} |")
    print(f"| **total** | **{sum(r[1] for r in rows):.1f}** | **{sum(r[2] for r in rows):.1f}** |")
    print(f"\nload average at the end: {' '.join(f'{v:.1f}' for v in __import__('os').getloadavg())}")
    print(f"\nvalue {res.value:.4g} ± {res.std_error:.2g} (Monte Carlo s.e.), peak RSS {peak_rss_gb():.2f} GB")


def agreement(args) -> None:
    import torch
    from scipy import stats

    from otdata.distance import DatasetDistance, SlicedDatasetDistance, distance_matrix

    data = {}
    for name in NIST:
        label, X, y = load(name, args.data_dir, args.n)
        data[label] = (X.to(args.device), y.to(args.device))
    distances = {
        "OTDD gaussian": DatasetDistance(label_distance="gaussian"),
        **({"OTDD exact": DatasetDistance(label_distance="exact")} if args.exact else {}),
        "sliced, 1,000 slices": SlicedDatasetDistance(n_projections=1000),
        "sliced, 10,000 slices": SlicedDatasetDistance(n_projections=10000),
    }
    names = list(data)
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    values, seconds, cpu_seconds = {}, {}, {}
    for label, dd in distances.items():
        sync(args.device)
        start, cpu = time.perf_counter(), time.process_time()
        m = distance_matrix(data, dd)
        sync(args.device)
        seconds[label] = (time.perf_counter() - start) / len(pairs)
        cpu_seconds[label] = (time.process_time() - cpu) / len(pairs)
        values[label] = [float(m.values[i, j]) for i, j in pairs]
        print(f"{label}: {seconds[label]:.2f} s per pair", file=sys.stderr, flush=True)
    ref = values["OTDD gaussian"]
    print(f"\n| distance ({args.n} items per dataset, {len(pairs)} pairs, {args.device}) | wall s per pair | "
          f"CPU s per pair | Spearman ρ with OTDD gaussian | Pearson r |\n|---|---|---|---|---|")
    for label in distances:
        rho = stats.spearmanr(ref, values[label])[0]
        r = stats.pearsonr(ref, values[label])[0]
        print(f"| {label} | {seconds[label]:.2f} | {cpu_seconds[label]:.2f} | {rho:.2f} | {r:.2f} |")
    print("\n| pair | " + " | ".join(distances) + " |\n|---|" + "---|" * len(distances))
    for k, (i, j) in enumerate(pairs):
        print(f"| {names[i]}–{names[j]} | " + " | ".join(f"{values[l][k]:.4g}" for l in distances) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--part", choices=["full", "agreement", "all"], default="all")
    parser.add_argument("--projections", type=int, default=1000)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--exact", action="store_true", help="agreement: the exact-label OTDD too (slow)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    if args.part in ("full", "all"):
        full(args)
    if args.part in ("agreement", "all"):
        agreement(args)


if __name__ == "__main__":
    main()
