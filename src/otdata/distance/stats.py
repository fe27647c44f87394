"""Per-class statistics of a labeled dataset (means, covariances / covariance factors, counts), and
the class-to-class sums of a coupling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from otdata.ot.gaussian import covariance_factor


def class_sums(P: Tensor, lx: Tensor, Cx: int, ly: Tensor, Cy: int) -> Tensor:
    """``(Cx, Cy)`` coupling mass between every pair of classes: ``P`` ``(n, m)`` summed over the
    rows of each class of ``lx`` (labels in ``0..Cx-1``) and the columns of each class of ``ly``."""
    rows = P.new_zeros(Cx, P.shape[1]).index_add_(0, lx, P)
    return P.new_zeros(Cx, Cy).index_add_(1, ly, rows)


def map_labels(y: Tensor) -> tuple[Tensor, Tensor]:
    """Map arbitrary integer labels to ``0..C-1`` in sorted order. Returns ``(index, classes)``
    with ``classes[index] == y``."""
    classes, idx = torch.unique(y, sorted=True, return_inverse=True)
    return idx, classes


@dataclass
class ClassStats:
    """Statistics of each class ``c = 0..C-1`` (in the order of ``classes``).

    ``means``: ``(C, d)``; ``counts``: ``(C,)``; ``factors``: list of ``F_c`` with
    ``F_c^T F_c = Sigma_c`` (full route: ``Sigma^{1/2}``, low-rank route: centered samples / sqrt(n_c));
    ``traces``: ``tr Sigma_c``; ``variances``: ``(C, d)`` diagonal of ``Sigma_c`` (diagonal mode).
    Covariances are the biased (1/n_c) sample covariances (+ ``ridge * I``).
    """

    classes: Tensor
    counts: Tensor
    means: Tensor
    factors: list[Tensor] | None = None
    traces: Tensor | None = None
    variances: Tensor | None = None
    ridge: float = 0.0

    @property
    def num_classes(self) -> int:
        return int(self.classes.numel())

    @property
    def covariances(self) -> Tensor:
        """``(C, d, d)`` covariance matrices, rebuilt from the factors (or the diagonal)."""
        if self.factors is not None:
            out = []
            for F in self.factors:  # a ridge is always inside full factors (no low-rank with ridge)
                out.append(F.T @ F)
            return torch.stack(out)
        if self.variances is not None:
            return torch.diag_embed(self.variances)
        raise ValueError("these class statistics hold means only; compute them with covariance='full'|'diagonal'")


def class_stats(
    X: Tensor,
    y: Tensor,
    covariance: str | None = "full",
    ridge: float = 0.0,
    low_rank: bool | str = "auto",
    dtype: torch.dtype | None = torch.float64,
    min_count: int = 1,
) -> ClassStats:
    """Class means, counts and covariances of ``X`` (``(n, d)``) grouped by labels ``y`` (``(n,)``).

    ``y`` may hold arbitrary integers (mapped to ``0..C-1`` in sorted order, see ``classes``).
    ``covariance``: ``"full"`` (factors for Bures), ``"diagonal"`` (variances) or ``None``
    (means only). ``low_rank="auto"``: a class with ``n_c <= d`` keeps its centered samples as
    the factor (Gram trick, O(n_c^2 d)). ``dtype``: statistics precision (float64 by default).
    Differentiable w.r.t. ``X``.
    """
    idx, classes = map_labels(y)
    Xs = X if dtype is None else X.to(dtype)
    C = classes.numel()
    counts = torch.bincount(idx, minlength=C)
    if int(counts.min()) < min_count:
        bad = classes[counts < min_count].tolist()
        raise ValueError(
            f"class(es) {bad} have fewer than {min_count} samples; a Gaussian needs at least 2 samples per "
            "class: use label_distance='means' or 'exact', drop those classes, or set a covariance ridge > 0"
        )
    order = torch.argsort(idx, stable=True)
    groups = torch.split(Xs[order], counts.tolist())
    means = torch.stack([g.mean(0) for g in groups])
    st = ClassStats(classes=classes, counts=counts, means=means, ridge=float(ridge))
    if covariance == "full":
        fac = [covariance_factor(g, m, low_rank=low_rank, ridge=ridge) for g, m in zip(groups, means)]
        st.factors = [f for f, _ in fac]
        st.traces = torch.stack([t for _, t in fac])
    elif covariance == "diagonal":
        st.variances = torch.stack([((g - m) ** 2).mean(0) for g, m in zip(groups, means)]) + ridge
    elif covariance is not None:
        raise ValueError(f"covariance must be 'full', 'diagonal' or None, got {covariance!r}")
    return st
