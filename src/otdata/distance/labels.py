"""Distances between all class pairs of two labeled datasets: the ``(C1, C2)`` matrix of W_p^p."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from otdata.ot.costs import pairwise_cost
from otdata.ot.exact import emd2_differentiable
from otdata.ot.gaussian import bures_cross_terms, bures_wasserstein_diagonal
from otdata.ot._threads import single_thread
from otdata.ot.batched import batched_sinkhorn
from otdata.ot.config import SinkhornConfig
from otdata.ot.costs import MatrixCost
from otdata.ot.sinkhorn import ConvergenceWarning, sinkhorn

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


#: the batched exact path runs at this epsilon relative to each class pair's mean cost: its
#: transport costs are 0.1-0.3 % above exact OT on MNIST/USPS classes (well inside the 1 % that the
#: tests require against POT ``emd2``), in ~100 over-relaxed iterations.
EXACT_EPSILON = 3e-3
#: marginal tolerance of the batched exact path: below the epsilon bias in effect on the value.
EXACT_TOL = 1e-3
EXACT_METHODS = ("auto", "batched", "emd", "sinkhorn")


def exact_label_path(method: str) -> str:
    """The solver an ``"exact"`` label distance uses for ``method``: ``"batched"`` (every class pair
    at once, see :func:`otdata.ot.batched.batched_sinkhorn`; what ``"auto"`` picks), ``"emd"``
    (POT's network simplex pair by pair, the reference) or ``"sinkhorn"`` (one entropic solve per
    pair at the solver's epsilon)."""
    if method not in EXACT_METHODS:
        raise ValueError(f"exact_method must be one of {EXACT_METHODS}, got {method!r}")
    return "batched" if method == "auto" else method


def _pad_groups(groups: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Stack groups ``(n_c, d)`` into ``(C, n_max, d)`` (zero rows) and uniform weights (zero on padding)."""
    n = max(g.shape[0] for g in groups)
    X = torch.stack([torch.nn.functional.pad(g, (0, 0, 0, n - g.shape[0])) for g in groups])
    w = torch.stack([torch.cat([g.new_full((g.shape[0],), 1.0 / g.shape[0]), g.new_zeros(n - g.shape[0])])
                     for g in groups])
    return X, w


def _batched_pairs(g1, g2, pi, pj, p, max_iter, chunk_elements) -> Tensor:
    A, wa = _pad_groups(g1)
    B, wb = _pad_groups(g2)
    if not (A.requires_grad or B.requires_grad):  # float32 kernels: half the traffic, same values (<< 1 %)
        A, wa, B, wb = A.float(), wa.float(), B.float(), wb.float()
    a2, b2 = (A * A).sum(-1), (B * B).sum(-1)
    step = max(1, chunk_elements // (A.shape[1] * B.shape[1]))
    vals, worst, converged = [], 0.0, True
    with single_thread():
        for k0 in range(0, pi.numel(), step):
            qi, qj = pi[k0:k0 + step], pj[k0:k0 + step]
            Cb = torch.baddbmm(b2[qj].unsqueeze(1), A[qi], B[qj].mT, alpha=-2.0) + a2[qi].unsqueeze(2)
            Cb = Cb.clamp_min(0.0)
            if p != 2:
                Cb = (Cb + 1e-30).sqrt() if p == 1 else (Cb + torch.finfo(Cb.dtype).tiny).sqrt().pow(p)
            a, b = wa[qi], wb[qj]
            with torch.no_grad():
                mean = (a.unsqueeze(2) * Cb * b.unsqueeze(1)).sum((1, 2))
            r = batched_sinkhorn(Cb, a, b, EXACT_EPSILON * mean.clamp_min(1e-30), tol=EXACT_TOL, max_iter=max_iter)
            vals.append(r.transport_cost)
            worst, converged = max(worst, r.marginal_error), converged and r.converged
    if not converged:
        warnings.warn(f"exact label distances (batched Sinkhorn, relative epsilon {EXACT_EPSILON}) did not "
                      f"converge: L1 marginal error {worst:.2e} > tol {EXACT_TOL:.0e} after {max_iter} iterations; "
                      "use exact_method='emd'", ConvergenceWarning, stacklevel=3)
    return torch.cat(vals)


def exact_label_distances(
    X1: Tensor, l1: Tensor, C1: int, X2: Tensor, l2: Tensor, C2: int, p: float = 2.0,
    method: str = "auto", solver: SinkhornConfig | None = None, symmetric: bool = False,
    chunk_elements: int = 1 << 24,
) -> Tensor:
    """``W_p^p`` between the empirical class distributions (OT between the class samples).

    ``method`` (see :func:`exact_label_path`): ``"auto"``/``"batched"`` solve all class pairs in
    one batched Sinkhorn at the small relative epsilon :data:`EXACT_EPSILON` (within 1 % of exact
    OT), ``"emd"`` calls POT's exact solver pair by pair, ``"sinkhorn"`` solves pair by pair with
    ``solver``'s settings. ``symmetric=True`` (the same dataset twice): only the pairs ``i < j`` are
    solved, the diagonal is 0. Gradients flow to ``X1``/``X2`` (envelope theorem for the entropic
    paths). ``chunk_elements`` bounds the padded entries of one batch.
    """
    path = exact_label_path(method)
    solver = solver or SinkhornConfig()
    g1 = [X1[l1 == c] for c in range(C1)]
    g2 = g1 if symmetric else [X2[l2 == c] for c in range(C2)]
    if symmetric:
        pi, pj = torch.triu_indices(C1, C1, 1)
    else:
        pi, pj = torch.arange(C1).repeat_interleave(C2), torch.arange(C2).repeat(C1)
    if path == "batched":
        vals = _batched_pairs(g1, g2, pi, pj, p, solver.max_iter, chunk_elements) if pi.numel() else X1.new_zeros(0)
    else:
        out = []
        for i, j in zip(pi.tolist(), pj.tolist()):
            Cab = pairwise_cost(g1[i], g2[j], p)
            if path == "emd":
                out.append(emd2_differentiable(Cab))
                continue
            scale = MatrixCost(Cab).mean_value()
            r = sinkhorn(None, None, Cab, solver.absolute_epsilon(scale or 1.0), **solver.solve_kwargs())
            out.append(r.transport_cost + (r.loss - r.loss.detach()))  # value <pi,C>, envelope gradient
        vals = torch.stack(out) if out else X1.new_zeros(0)
    W = X1.new_zeros(C1, C1 if symmetric else C2).index_put((pi.to(X1.device), pj.to(X1.device)), vals.to(X1.dtype))
    return W + W.T if symmetric else W
