"""Class fidelity of `task=flow` toward MNIST: the default (correspondence=auto) against free matching.

For each source (USPS, FashionMNIST, KMNIST, and USPS with class 0 three times as frequent as each
other class, written as an `arrays` file) it runs

    otdata task=flow data@source=<source> data@target=mnist flow.correspondence=<auto|null>

and collects from each run folder's `flow.csv` the class fidelity and the accuracy of the frozen
MNIST classifier of `experiment=repurpose` (cached under `paths.cache_dir`; run that experiment once
first) on the particles before and after the flow. Writes `fidelity.csv` / `fidelity.md` here.

    python experiments/flows/fidelity.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
COLUMNS = ("source", "correspondence", "n_source", "class_fidelity", "worst_class_fidelity",
           "classifier_raw", "classifier_flowed", "objective_start", "objective_end", "seconds")


def skewed_usps(data_dir: str, path: Path, per_class: int = 90, factor: int = 3, seed: int = 0) -> Path:
    """USPS training images with class 0 ``factor`` times as frequent as each other class."""
    from otdata.data import USPSDataModule

    X, y = USPSDataModule(data_dir).tensors("train")
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(10):
        idx = np.flatnonzero(y.numpy() == c)
        keep.extend(rng.choice(idx, size=per_class * (factor if c == 0 else 1), replace=False))
    keep = np.sort(np.array(keep))
    images = (X[keep].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    np.savez(path, X=images, y=y[keep].numpy(), class_names=np.array([str(c) for c in range(10)]))
    return path


def run_flow(source: list[str], correspondence: str, data_dir: str, out: Path) -> dict:
    """One `otdata task=flow` run; its `flow.csv` row plus the wall time."""
    cmd = ["otdata", "task=flow", *source, "data@target=mnist", f"paths.data_dir={data_dir}",
           f"flow.correspondence={correspondence}", f"hydra.run.dir={out}"]
    print("$", " ".join(cmd[:-1]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    with open(out / "flow.csv") as f:
        row = next(csv.DictReader(f))
    row["seconds"] = f"{time.perf_counter() - start:.0f}"
    row["correspondence"] = "free" if correspondence == "null" else correspondence
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        skew = skewed_usps(args.data_dir, tmp / "usps_skewed.npz")
        sources = {"usps": ["data@source=usps"], "fashion_mnist": ["data@source=fashion_mnist"],
                   "kmnist": ["data@source=kmnist"],
                   "usps_skewed": ["data@source=arrays", f"source.path={skew}", "source.name=USPS-skewed",
                                   "source.image_size=28", "task.n_source=null"]}
        for name, source in sources.items():
            for corr in ("auto", "null"):
                row = run_flow(source, corr, args.data_dir, tmp / f"{name}_{corr}")
                rows.append({k: row.get(k, "") for k in COLUMNS})
                print(rows[-1], flush=True)
    out = Path(args.out)
    with open(out / "fidelity.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[k]) for k in COLUMNS) + " |" for r in rows]
    (out / "fidelity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
