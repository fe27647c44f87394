"""Distances between all class pairs of two labeled datasets: the ``(C1, C2)`` matrix of W_p^p."""

from __future__ import annotations

import torch
from torch import Tensor

from otdata.ot.costs import pairwise_cost
from otdata.ot.exact import emd2_differentiable
from otdata.ot.gaussian import bures_cross_terms, bures_wasserstein_diagonal
from otdata.ot.sinkhorn import sinkhorn

from .stats import ClassStats

LABEL_DISTANCES = ("gaussian", "exact", "means")


def gaussian_label_distances(s1: ClassStats, s2: ClassStats) -> Tensor:
    """Bures-Wasserstein ``W_2^2`` between the class Gaussians (full or diagonal covariances)."""
    if s1.factors is not None and s2.factors is not None:
        # all class pairs in one matmul and one batched eigvalsh (same values as the pair loop of
        # bures_wasserstein_factors)
        M = (torch.cdist(s1.means, s2.means).pow(2) if s1.means.requires_grad or s2.means.requires_grad
             else ((s1.means.unsqueeze(1) - s2.means.unsqueeze(0)) ** 2).sum(-1))
        cross = bures_cross_terms(s1.factors, s2.factors)
        return (M + s1.traces.unsqueeze(1) + s2.traces.unsqueeze(0) - 2 * cross).clamp_min(0.0)
    if s1.variances is not None and s2.variances is not None:
        return bures_wasserstein_diagonal(s1.means, s1.variances, s2.means, s2.variances)
    raise ValueError("gaussian label distances need class statistics with covariance='full' or 'diagonal'")


def means_label_distances(s1: ClassStats, s2: ClassStats, p: float = 2.0) -> Tensor:
    """``||mu_c - mu_c'||^p`` between class means."""
    return pairwise_cost(s1.means, s2.means, p)


def exact_label_distances(
    X1: Tensor, l1: Tensor, C1: int, X2: Tensor, l2: Tensor, C2: int, p: float = 2.0,
    method: str = "auto", epsilon: float = 1e-2, max_emd_size: int = 2500 * 2500, **sinkhorn_kwargs,
) -> Tensor:
    """``W_p^p`` between the empirical class distributions (OT between the class samples).

    ``method``: ``"emd"`` (exact, POT), ``"sinkhorn"`` (transport cost of the entropic coupling
    at ``epsilon``, relative to the mean pairwise cost of each pair) or ``"auto"`` (emd when
    ``n_c * n_c' <= max_emd_size``). Gradients flow to ``X1``/``X2`` in both cases.
    """
    g1 = [X1[l1 == c] for c in range(C1)]
    g2 = [X2[l2 == c] for c in range(C2)]
    rows = []
    for a in g1:
        row = []
        for b in g2:
            Cab = pairwise_cost(a, b, p)
            use_emd = method == "emd" or (method == "auto" and a.shape[0] * b.shape[0] <= max_emd_size)
            if use_emd:
                row.append(emd2_differentiable(Cab))
            else:
                scale = float(Cab.detach().mean()) or 1.0
                r = sinkhorn(None, None, Cab, epsilon * scale, **sinkhorn_kwargs)
                row.append(r.transport_cost + (r.loss - r.loss.detach()))  # value <pi,C>, envelope gradient
        rows.append(torch.stack(row))
    return torch.stack(rows)
