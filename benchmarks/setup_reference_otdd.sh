#!/usr/bin/env bash
# Prepare a checkout of the reference OTDD code (github.com/microsoft/otdd) so that
# benchmarks/bench_reference.py can run it side by side with otdata.
#
# Usage:
#   git clone https://github.com/microsoft/otdd /path/to/otdd      # or any export of its tree
#   export OTDD_REFERENCE_DIR=/path/to/otdd
#   export OTDD_REFERENCE_DEPS=/path/to/otdd-deps   # optional, see below
#   bash benchmarks/setup_reference_otdd.sh
#   python benchmarks/bench_reference.py
#
# What it changes in the checkout (and nothing else; the script is idempotent):
#   1. `torch.symeig` / `Tensor.symeig(eigenvectors=True)` -> `torch.linalg.eigh(...)`:
#      symeig was removed from PyTorch (2.0); eigh returns the same (eigenvalues ascending,
#      eigenvectors as columns). Files: otdd/pytorch/sqrtm.py (symsqrt_v1, symsqrt_v2,
#      special_sylvester; the spectral matrix square root of the Gaussian label distances) and
#      otdd/pytorch/moments.py (the eigen_correction='exact' branch, unused by the benchmark).
#   No other source change is needed to import `otdd.pytorch.distance` and `otdd.pytorch.flows`
#   on Python 3.11 / PyTorch 2.x.
#
# What it installs (the reference's import chain for `otdd.pytorch.distance` and
# `otdd.pytorch.flows`; never otdata's own dependencies, never its pyproject):
#   geomloss==0.2.6   the reference's Sinkhorn, pinned to the release the comparison is specified
#                     with, so that its numbers do not move with GeomLoss releases (otdata's package
#                     does not import GeomLoss; only benchmarks/bench_distance.py does)
#   scikit-learn, joblib, threadpoolctl, narwhals   (k_means/DBSCAN/TSNE imports; joblib in wasserstein.py)
#   seaborn, adjustText   (otdd/plotting.py, imported by distance.py)
#   munkres   (otdd/pytorch/utils.py)
#   celluloid, openTSNE   (otdd/pytorch/flows.py)
# torch, numpy, scipy, matplotlib, pandas, tqdm, POT and Pillow come from the active environment.
# Where they go:
#   * OTDD_REFERENCE_DEPS unset: into the active Python environment (`python -m pip install`).
#     Note that this replaces a newer geomloss there with 0.2.6.
#   * OTDD_REFERENCE_DEPS=<dir>: into <dir> (`pip install --target`, without dependencies), so
#     the environment itself is left as it is; bench_reference.py puts <dir> first on the
#     reference's PYTHONPATH.
# Not needed by the benchmark and not installed: torchtext and h5py (only otdd/pytorch/datasets.py,
# its data loaders), pykeops (GeomLoss' optional backend; the reference uses 'tensorized'),
# attrdict (listed in setup.py, imported nowhere in the package).
set -euo pipefail

if [[ -z "${OTDD_REFERENCE_DIR:-}" ]]; then
    echo "set OTDD_REFERENCE_DIR to a checkout of github.com/microsoft/otdd" >&2
    exit 2
fi
REF="$OTDD_REFERENCE_DIR"
if [[ ! -f "$REF/otdd/pytorch/distance.py" ]]; then
    echo "$REF does not look like an otdd checkout (no otdd/pytorch/distance.py)" >&2
    exit 2
fi
PY="${PYTHON:-python}"

# 1. symeig -> linalg.eigh (only the calls; the string option func='symeig' keeps its name)
sed -i -E \
    -e 's/([A-Za-z_][A-Za-z_0-9]*)\.symeig\(eigenvectors=True\)/torch.linalg.eigh(\1)/g' \
    -e 's/torch\.symeig\(([^,()]+)(, *eigenvectors=True)?\)/torch.linalg.eigh(\1)/g' \
    "$REF/otdd/pytorch/sqrtm.py" "$REF/otdd/pytorch/moments.py"
if grep -nE '\.symeig\(' "$REF/otdd/pytorch/sqrtm.py" "$REF/otdd/pytorch/moments.py"; then
    echo "symeig calls left after the rewrite (above)" >&2
    exit 1
fi

# 2. the missing dependencies
PKGS=(geomloss==0.2.6 scikit-learn joblib threadpoolctl narwhals seaborn adjustText munkres celluloid openTSNE)
if [[ -n "${OTDD_REFERENCE_DEPS:-}" ]]; then
    mkdir -p "$OTDD_REFERENCE_DEPS"
    "$PY" -m pip install --quiet --no-deps --upgrade --target "$OTDD_REFERENCE_DEPS" "${PKGS[@]}"
    export PYTHONPATH="$OTDD_REFERENCE_DEPS:$REF${PYTHONPATH:+:$PYTHONPATH}"
else
    "$PY" -m pip install --quiet "${PKGS[@]}"
    export PYTHONPATH="$REF${PYTHONPATH:+:$PYTHONPATH}"
fi

# 3. check: the reference imports and computes a tiny distance
MPLBACKEND=Agg "$PY" - <<'EOF'
import geomloss, torch
from torch.utils.data import TensorDataset
from otdd.pytorch.distance import DatasetDistance
import otdd.pytorch.flows  # noqa: F401  (the flow classes import too)

g = torch.Generator().manual_seed(0)
X1, X2 = torch.randn(40, 5, generator=g), torch.randn(30, 5, generator=g) + 0.5
y1, y2 = torch.arange(40) % 2, torch.arange(30) % 2
d1, d2 = TensorDataset(X1, y1), TensorDataset(X2, y2)
d1.targets, d2.targets = y1, y2
d = DatasetDistance(d1, d2, inner_ot_method="exact", debiased_loss=True, p=2, entreg=0.1, device="cpu",
                    verbose=0).distance(maxsamples=1000)
print(f"reference otdd ready (geomloss {geomloss.__version__}): tiny OTDD = {float(d):.4f}")
EOF
