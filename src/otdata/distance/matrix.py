"""Distances among several datasets, reusing per-dataset class statistics, with an on-disk cache.

Cache entries are written atomically (:func:`otdata.data.content_cache.save_atomic`), read with
``torch.load(weights_only=True)``, and an entry that cannot be read (empty, truncated, not a
result) is recomputed and rewritten instead of breaking every later call."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from otdata.data.content_cache import save_atomic, tensor_digest
from otdata.data.labeled import as_labeled

from .otdd import DatasetDistance

log = logging.getLogger(__name__)


def _read_entry(path: Path) -> dict | None:
    """A cached result, or None (with a warning) when the file is unreadable or not a result."""
    try:
        rec = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # empty, truncated, or holding more than plain data
        log.warning("Distance cache entry %s cannot be read (%s: %s); recomputing it.", path,
                    type(error).__name__, error)
        return None
    problem = _entry_problem(rec)
    if problem:
        log.warning("Distance cache entry %s is not a distance result (%s); recomputing it.", path,
                    problem)
        return None
    return rec


def _entry_problem(rec: Any) -> str | None:
    """What is wrong with a loaded cache entry, or None: it must be a dict whose ``value`` is a
    number and whose ``divergence`` is a number or None."""
    if not isinstance(rec, dict):
        return f"a {type(rec).__name__}, not a dict"
    for key, optional in (("value", False), ("divergence", True)):
        if key not in rec:
            return f"{key!r} is missing"
        v = rec[key]
        if (v is None and not optional) or (v is not None and (isinstance(v, bool) or
                                                               not isinstance(v, int | float))):
            return f"{key!r} is {v!r} ({type(v).__name__}), not a number"
    return None


def _entry_path(cache: Path, digest_i: str, digest_j: str, settings: str) -> Path:
    """The cache file of one ordered pair under one distance's settings."""
    key = hashlib.sha256(f"{digest_i}|{digest_j}|{settings}".encode()).hexdigest()[:32]
    return cache / f"otdd_{key}.pt"


def missing_pairs(datasets: Mapping[str, Any], dd: DatasetDistance, cache_dir: str | Path) -> list[tuple[str, str]]:
    """The unordered pairs `(a, b)` (in the order of `datasets`) whose result is not yet readable
    in `cache_dir`: what :func:`distance_matrix` would compute (a job per pair on a cluster)."""
    names = list(datasets)
    data = {k: as_labeled(datasets[k], name=f"X[{k}]") for k in names}
    digests = {k: tensor_digest(data[k].X, data[k].y) for k in names}
    settings = json.dumps(dd.settings(), sort_keys=True, default=str)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    return [(a, b) for a, b in pairs
            if not ((path := _entry_path(Path(cache_dir), digests[a], digests[b], settings)).exists()
                    and _read_entry(path) is not None)]


@dataclass
class DistanceMatrix:
    """``values[i, j]`` = ``DistanceResult.value`` between ``names[i]`` and ``names[j]``;
    ``divergences`` likewise (NaN when not debiased); ``cached[i][j]``: read from the cache."""

    names: list[str]
    values: Tensor
    divergences: Tensor
    cached: list[list[bool]]


def distance_matrix(
    datasets: Mapping[str, Any],
    dd: DatasetDistance | None = None,
    cache_dir: str | Path | None = None,
    symmetric: bool = True,
) -> DistanceMatrix:
    """All pairwise distances between ``datasets`` (name -> ``(X, y)``, or any dataset
    :func:`otdata.data.as_labeled` accepts: a ``DataLoader``, a ``LabeledDataModule``, ...).

    Each dataset is prepared once (class statistics reused for all its pairs). With
    ``cache_dir``, each pair's result is stored with ``torch.save`` under a key hashing both
    datasets' bytes and the distance settings, and read back on later calls. ``symmetric``:
    compute ``i < j`` only and mirror (the diagonal is 0).
    """
    dd = dd or DatasetDistance()
    names = list(datasets)
    K = len(names)
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    data = {k: as_labeled(datasets[k], name=f"X[{k}]") for k in names}
    digests = {k: tensor_digest(data[k].X, data[k].y) for k in names}
    settings = json.dumps(dd.settings(), sort_keys=True, default=str)
    prepared: dict[str, object] = {}
    values = torch.zeros(K, K, dtype=torch.float64)
    divs = torch.full((K, K), float("nan"), dtype=torch.float64)
    cached = [[False] * K for _ in range(K)]
    for i in range(K):
        for j in range(K):
            if i == j and symmetric:
                divs[i, j] = 0.0 if dd.debiased else float("nan")
                continue
            if symmetric and j < i:
                values[i, j], divs[i, j], cached[i][j] = values[j, i], divs[j, i], cached[j][i]
                continue
            path = (_entry_path(cache, digests[names[i]], digests[names[j]], settings)
                    if cache is not None else None)
            rec = _read_entry(path) if path is not None and path.exists() else None
            if rec is not None:
                cached[i][j] = True
            else:
                for k in (names[i], names[j]):
                    if k not in prepared:
                        prepared[k] = dd.prepare(data[k], name=f"X[{k}]")
                res = dd(prepared[names[i]], prepared[names[j]])
                rec = {"value": res.value, "divergence": res.divergence, "result": res.to_dict()}
                if path is not None:
                    save_atomic(rec, path)
            values[i, j] = rec["value"]
            divs[i, j] = float("nan") if rec["divergence"] is None else rec["divergence"]
    return DistanceMatrix(names, values, divs, cached)
