"""Class correspondences: which target class each source class should flow to.

A correspondence is a plain ``dict`` ``{source_class: target_class}`` keyed by the *label values*
(not positions). It is either computed from a label-distance matrix ``W`` of shape
``(C_src, C_tgt)`` (for instance ``DatasetDistance(...)(Xs, ys, Xt, yt).label_distances``), or
prescribed by the user.

Assignment rules (:func:`match_classes`):

* ``"hungarian"`` — one-to-one assignment minimising ``sum_c W[c, corr[c]]``
  (``scipy.optimize.linear_sum_assignment``). Needs ``C_src <= C_tgt``.
* ``"nearest"`` — every source class goes to its nearest target class (``argmin`` over a row).
  Several source classes may share a target class, some target classes may receive none.
* ``"balanced"`` — a balanced OT assignment for ``C_src > C_tgt`` (e.g. 26 letters -> 10 digits):
  every target class receives either ``floor(C_src / C_tgt)`` or ``ceil(C_src / C_tgt)`` source
  classes, and the total cost is minimal. It is solved exactly as a Hungarian problem in which each
  target column is repeated ``ceil(C_src / C_tgt)`` times (capacity constraints); the copies beyond
  the per-target minimum ``floor(C_src / C_tgt)`` carry a penalty larger than any possible saving,
  so that every target class is used and the assignment is as even as possible.
* ``"auto"`` (default) — ``"hungarian"`` when ``C_src <= C_tgt``, ``"balanced"`` otherwise.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["match_classes", "needs_label_distances", "resolve_correspondence", "correspondence_matrix"]

METHODS = ("auto", "hungarian", "nearest", "balanced")


def _as_numpy(W) -> np.ndarray:
    if isinstance(W, torch.Tensor):
        W = W.detach().cpu().double().numpy()
    W = np.asarray(W, dtype=float)
    if W.ndim != 2:
        raise ValueError(f"label-distance matrix must be 2-D (C_src, C_tgt), got shape {W.shape}")
    if not np.all(np.isfinite(W)):
        raise ValueError("label-distance matrix contains NaN/inf; check the class statistics "
                         "(every class needs at least 2 samples for the gaussian label distance)")
    return W


def _as_list(classes, n: int) -> list[int]:
    if classes is None:
        return list(range(n))
    if isinstance(classes, torch.Tensor):
        classes = classes.tolist()
    classes = [int(c) for c in classes]
    if len(classes) != n:
        raise ValueError(f"got {len(classes)} class labels for a matrix dimension of {n}")
    return classes


def match_classes(
    W,
    src_classes: Sequence[int] | torch.Tensor | None = None,
    tgt_classes: Sequence[int] | torch.Tensor | None = None,
    method: str = "auto",
) -> dict[int, int]:
    """Map each source class to a target class from a label-distance matrix ``W`` (C_src, C_tgt).

    Args:
        W: ``(C_src, C_tgt)`` matrix of distances between source and target classes.
        src_classes / tgt_classes: label values of the rows / columns (default ``0..C-1``).
        method: ``"auto"``, ``"hungarian"``, ``"nearest"`` or ``"balanced"`` (see module doc).

    Returns:
        ``{source_label: target_label}`` for every source class.
    """
    W = _as_numpy(W)
    cs, ct = W.shape
    src = _as_list(src_classes, cs)
    tgt = _as_list(tgt_classes, ct)
    if method not in METHODS:
        raise ValueError(f"unknown correspondence method {method!r}; use one of {METHODS}")
    if method == "auto":
        method = "hungarian" if cs <= ct else "balanced"
    if method == "hungarian":
        if cs > ct:
            raise ValueError(
                f"hungarian assignment needs C_src <= C_tgt, got {cs} source and {ct} target "
                "classes; use method='balanced' (capacity-constrained) or 'nearest'"
            )
        rows, cols = linear_sum_assignment(W)
        return {src[r]: tgt[c] for r, c in zip(rows, cols)}
    if method == "nearest":
        return {src[r]: tgt[int(np.argmin(W[r]))] for r in range(cs)}
    # balanced: each target gets floor or ceil of cs/ct source classes
    reps = -(-cs // ct)  # ceil
    lo = cs // ct
    big = W.max() - W.min() + 1.0
    blocks = []
    for k in range(reps):
        # copies beyond the guaranteed minimum `lo` cost a little more, so that every target first
        # receives `lo` classes before any receives `lo + 1` (no target left empty when cs >= ct)
        blocks.append(W + (big * cs if k >= lo else 0.0))
    Wrep = np.concatenate(blocks, axis=1)
    rows, cols = linear_sum_assignment(Wrep)
    return {src[r]: tgt[c % ct] for r, c in zip(rows, cols)}


def needs_label_distances(spec) -> bool:
    """Whether :func:`resolve_correspondence` computes ``spec`` from a label-distance matrix
    (``"auto"`` and the other matching methods), so that the caller must pass ``W``."""
    return isinstance(spec, str) and spec.lower() in METHODS


def resolve_correspondence(
    spec,
    src_classes: Sequence[int] | torch.Tensor,
    tgt_classes: Sequence[int] | torch.Tensor,
    W=None,
) -> dict[int, int] | None:
    """Turn a user specification into a ``{source_label: target_label}`` dict (or ``None``).

    ``spec`` may be:

    * ``None`` / ``"none"`` / ``"free"`` — no correspondence (free OTDD); returns ``None``;
    * ``"identity"`` — class ``c`` goes to class ``c`` (every source label must exist in the target);
    * ``"auto"``, ``"hungarian"``, ``"nearest"``, ``"balanced"`` — computed from ``W`` with
      :func:`match_classes` (``W`` is required);
    * a ``dict`` ``{source_label: target_label}`` (keys may be strings, as in YAML configs);
    * a list/tuple: ``spec[i]`` is the target of the ``i``-th source class (sorted label order).
    """
    src = _as_list(src_classes, len(src_classes))
    tgt = _as_list(tgt_classes, len(tgt_classes))
    if spec is None or (isinstance(spec, str) and spec.lower() in ("none", "free")):
        return None
    if isinstance(spec, str):
        key = spec.lower()
        if key == "identity":
            corr = {c: c for c in src}
        elif needs_label_distances(key):
            if W is None:
                raise ValueError(
                    f"correspondence={spec!r} is computed from a label-distance matrix, but none "
                    "was given; pass W or prescribe the correspondence as a dict"
                )
            return match_classes(W, src, tgt, method=key)
        else:
            raise ValueError(
                f"unknown correspondence {spec!r}; use None, 'identity', one of {METHODS}, "
                "a dict {source_class: target_class} or a list indexed by source class position"
            )
    elif isinstance(spec, Mapping):
        corr = {int(k): int(v) for k, v in spec.items()}
    elif isinstance(spec, (list, tuple)) or (isinstance(spec, torch.Tensor) and spec.ndim == 1):
        spec = list(spec.tolist() if isinstance(spec, torch.Tensor) else spec)
        if len(spec) != len(src):
            raise ValueError(
                f"correspondence list has {len(spec)} entries but the source has {len(src)} "
                f"classes {src}; give one target class per source class (sorted label order)"
            )
        corr = {c: int(t) for c, t in zip(src, spec)}
    else:
        raise ValueError(f"cannot interpret correspondence of type {type(spec).__name__}")
    missing = [c for c in src if c not in corr]
    if missing:
        raise ValueError(f"correspondence has no target for source class(es) {missing}; "
                         "give a target class for every source class")
    bad = sorted({t for t in corr.values() if t not in tgt})
    if bad:
        raise ValueError(
            f"correspondence maps to target class(es) {bad} that the target does not have "
            f"(target classes: {tgt}); fix the mapping or the target subsample"
        )
    return {c: corr[c] for c in src}


def correspondence_matrix(
    corr: Mapping[int, int],
    src_classes: Sequence[int],
    tgt_classes: Sequence[int],
    dtype=torch.float64,
) -> torch.Tensor:
    """0/1 matrix ``M`` of shape ``(C_src, C_tgt)`` with ``M[i, j] = 1`` iff
    ``corr[src_classes[i]] == tgt_classes[j]``."""
    src = list(int(c) for c in src_classes)
    tgt = list(int(c) for c in tgt_classes)
    M = torch.zeros(len(src), len(tgt), dtype=dtype)
    pos = {c: j for j, c in enumerate(tgt)}
    for i, c in enumerate(src):
        M[i, pos[int(corr[c])]] = 1.0
    return M
