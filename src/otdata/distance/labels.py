"""Distances between all class pairs of two labeled datasets: the ``(C1, C2)`` matrix of W_p^p."""

from __future__ import annotations

import torch
from torch import Tensor

from otdata.ot.costs import pairwise_cost
from otdata.ot.exact import emd2_differentiable
from otdata.ot.gaussian import bures_cross_terms, bures_wasserstein_diagonal
from otdata.ot._threads import single_thread
from otdata.ot.config import SinkhornConfig
from otdata.ot.costs import MatrixCost
from otdata.ot.sinkhorn import sinkhorn

from .stats import ClassStats

LABEL_DISTANCES = ("gaussian", "exact", "means")


def gaussian_label_distances(s1: ClassStats, s2: ClassStats, symmetric: bool = False) -> Tensor:
    """Bures-Wasserstein ``W_2^2`` between the class Gaussians (full or diagonal covariances).

    ``symmetric=True`` (``s2`` is ``s1``): the upper triangle is solved once and the diagonal is
    exactly zero. With gradients, eigenvalues below a relative floor get none (no ``d sqrt(0)``)."""
    if s1.factors is not None and s2.factors is not None:
        grad = torch.is_grad_enabled() and any(
            t.requires_grad for t in [s1.means, s1.traces, s2.means, s2.traces, *s1.factors, *s2.factors])
        # all class pairs in one matmul and one batched eigvalsh (same values as the pair loop of
        # bures_wasserstein_factors)
        M = ((s1.means.unsqueeze(1) - s2.means.unsqueeze(0)) ** 2).sum(-1)
        with single_thread():
            cross = bures_cross_terms(s1.factors, None if symmetric else s2.factors, safe=grad)
        W = (M + s1.traces.unsqueeze(1) + s2.traces.unsqueeze(0) - 2 * cross).clamp_min(0.0)
        if symmetric:
            W = W * (1 - torch.eye(W.shape[0], dtype=W.dtype, device=W.device))
        return W
    if s1.variances is not None and s2.variances is not None:
        return bures_wasserstein_diagonal(s1.means, s1.variances, s2.means, s2.variances)
    raise ValueError("gaussian label distances need class statistics with covariance='full' or 'diagonal'")


def means_label_distances(s1: ClassStats, s2: ClassStats, p: float = 2.0) -> Tensor:
    """``||mu_c - mu_c'||^p`` between class means."""
    return pairwise_cost(s1.means, s2.means, p)


def label_distances_from_stats(s1: ClassStats, s2: ClassStats, kind: str, p: float = 2.0,
                               symmetric: bool = False) -> Tensor:
    """The ``(C1, C2)`` label distances of kind ``"gaussian"`` or ``"means"`` from class statistics."""
    if kind == "gaussian":
        return gaussian_label_distances(s1, s2, symmetric=symmetric)
    if kind == "means":
        return means_label_distances(s1, s2, p)
    raise ValueError(f"label distance {kind!r} needs the class samples, not statistics; use 'gaussian' or 'means'")


def exact_label_distances(
    X1: Tensor, l1: Tensor, C1: int, X2: Tensor, l2: Tensor, C2: int, p: float = 2.0,
    method: str = "auto", solver: SinkhornConfig | None = None, max_emd_size: int = 2500 * 2500,
) -> Tensor:
    """``W_p^p`` between the empirical class distributions (OT between the class samples).

    ``method``: ``"emd"`` (exact, POT), ``"sinkhorn"`` (transport cost of the entropic coupling,
    with ``solver``'s settings: epsilon relative to each pair's mean cost by default) or
    ``"auto"`` (emd when ``n_c * n_c' <= max_emd_size``). Gradients flow to ``X1``/``X2``.
    """
    solver = solver or SinkhornConfig()
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
                scale = MatrixCost(Cab).mean_value(torch.full((Cab.shape[0],), 1.0 / Cab.shape[0], dtype=Cab.dtype),
                                                   torch.full((Cab.shape[1],), 1.0 / Cab.shape[1], dtype=Cab.dtype))
                r = sinkhorn(None, None, Cab, solver.absolute_epsilon(scale or 1.0), **solver.solve_kwargs())
                row.append(r.transport_cost + (r.loss - r.loss.detach()))  # value <pi,C>, envelope gradient
        rows.append(torch.stack(row))
    return torch.stack(rows)
