"""Distances between all class pairs of two labeled datasets: the ``(C1, C2)`` matrix of W_p^p."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from otdata.ot.costs import pairwise_cost
from otdata.ot.exact import emd2_differentiable
from otdata.ot.gaussian import bures_cross_terms, bures_from_parts, bures_wasserstein_diagonal
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
        # all class pairs in one matmul (the caller's threads) and batched eigvalsh (one thread;
        # same values as the pair loop of bures_wasserstein_factors)
        M = ((s1.means.unsqueeze(1) - s2.means.unsqueeze(0)) ** 2).sum(-1)
        cross = bures_cross_terms(s1.factors, None if symmetric else s2.factors, safe=grad)
        W = bures_from_parts(M, s1.traces, s2.traces, cross)
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


#: the batched exact path runs at this epsilon relative to each class pair's mean cost: small
#: enough that its entropic plan lies within a fraction of a percent of exact OT on MNIST/USPS
#: classes, large enough to get there in a few dozen iterations.
EXACT_EPSILON = 3e-3
#: the batched exact path stops each class pair once its value is *certified* within this
#: relative distance of exact OT (a feasible plan's cost against a dual lower bound, see
#: :mod:`otdata.ot.batched`); the reported value is the feasible plan's cost.
EXACT_RTOL = 5e-3
#: epsilon-scaling factor per annealing level of the batched exact path (one iteration each):
#: 0.25 halves the kernel rebuilds of 0.5 for the same final iterations on MNIST/USPS classes.
EXACT_SCALING = 0.25
EXACT_METHODS = ("auto", "batched", "emd", "sinkhorn")


def exact_label_path(method: str) -> str:
    """The solver an ``"exact"`` label distance uses for ``method``: ``"batched"`` (every class pair
    at once, see :func:`otdata.ot.batched.batched_sinkhorn`; what ``"auto"`` picks), ``"emd"``
    (POT's network simplex pair by pair, the reference) or ``"sinkhorn"`` (one entropic solve per
    pair at the solver's epsilon)."""
    if method not in EXACT_METHODS:
        raise ValueError(f"exact_method must be one of {EXACT_METHODS}, got {method!r}")
    return "batched" if method == "auto" else method


def _size_chunks(n1: Tensor, n2: Tensor, chunk_elements: int, waste: float = 1.5) -> list[Tensor]:
    """Pairs (sizes ``n1[k] x n2[k]``) grouped into batches, largest first, so that each batch's
    padded size (its largest ``n1`` times its largest ``n2``, times its count) stays within
    ``waste`` of the entries it holds and within ``chunk_elements`` (one pair at least)."""
    order = torch.argsort(n1 * n2, descending=True, stable=True).tolist()
    chunks, cur, nmax, mmax, real = [], [], 0, 0, 0
    for k in order:
        a, b = int(n1[k]), int(n2[k])
        nn, mm = max(nmax, a), max(mmax, b)
        padded = (len(cur) + 1) * nn * mm
        if cur and (padded > chunk_elements or padded > waste * (real + a * b)):
            chunks.append(torch.tensor(cur))
            cur, nn, mm, real = [], a, b, 0
        cur.append(k)
        nmax, mmax, real = nn, mm, real + a * b
    if cur:
        chunks.append(torch.tensor(cur))
    return chunks


def _batched_pairs(g1, g2, pi, pj, p, max_iter, chunk_elements, symmetric=False) -> Tensor:
    grad = any(g.requires_grad for g in [*g1, *g2])
    s1 = torch.tensor([g.shape[0] for g in g1])
    s2 = torch.tensor([g.shape[0] for g in g2])
    X = torch.cat(g1)
    Y = X if symmetric else torch.cat(g2)
    if not grad:  # float32 kernels: half the traffic, same values (<< 1 %)
        X = X.float()
        Y = X if symmetric else Y.float()
    x2, y2 = (X * X).sum(1), (Y * Y).sum(1)
    o1, o2 = torch.cumsum(s1, 0) - s1, torch.cumsum(s2, 0) - s2
    # all class blocks from one Gram matrix (one GEMM at full rate, no per-pair feature copies)
    # when it fits; else per batch from the class features
    G = X @ Y.T if X.shape[0] * Y.shape[0] <= 4 * chunk_elements else None
    vals, order, worst, gap, converged = [], [], 0.0, 0.0, True
    with single_thread():
        for q in _size_chunks(s1[pi], s2[pj], chunk_elements):
            qi, qj = pi[q], pj[q]
            n, m = int(s1[qi].max()), int(s2[qj].max())
            ra, rb = torch.arange(n), torch.arange(m)
            # rows/columns of each pair's block, padding pointing at the class' last item (masked)
            rows = o1[qi, None] + torch.minimum(ra[None], s1[qi, None] - 1)
            cols = o2[qj, None] + torch.minimum(rb[None], s2[qj, None] - 1)
            if G is not None:
                Gb = G[rows[:, :, None], cols[:, None, :]]
            else:
                Gb = torch.bmm(X[rows], Y[cols].mT)
            Cb = (x2[rows].unsqueeze(2) + y2[cols].unsqueeze(1)).sub_(Gb, alpha=2.0) if not grad else \
                x2[rows].unsqueeze(2) + y2[cols].unsqueeze(1) - 2.0 * Gb
            Cb = Cb.clamp_min(0.0)
            if p != 2:
                Cb = (Cb + 1e-30).sqrt() if p == 1 else (Cb + torch.finfo(Cb.dtype).tiny).sqrt().pow(p)
            a = (ra[None] < s1[qi, None]).to(Cb.dtype) / s1[qi, None].to(Cb.dtype)
            b = (rb[None] < s2[qj, None]).to(Cb.dtype) / s2[qj, None].to(Cb.dtype)
            with torch.no_grad():
                mean = (a.unsqueeze(2) * Cb * b.unsqueeze(1)).sum((1, 2))
            r = batched_sinkhorn(Cb, a, b, EXACT_EPSILON * mean.clamp_min(1e-30), rtol=EXACT_RTOL,
                                 max_iter=max_iter, scaling=EXACT_SCALING)
            vals.append(r.transport_cost)
            order.append(q)
            worst, gap, converged = max(worst, r.marginal_error), max(gap, r.gap), converged and r.converged
    if not converged:
        warnings.warn(f"exact label distances (batched Sinkhorn, relative epsilon {EXACT_EPSILON}) not certified "
                      f"within {EXACT_RTOL:.0e} of exact OT after {max_iter} iterations: largest gap {gap:.2e} "
                      "(values are feasible plans' costs, upper bounds); use exact_method='emd'",
                      ConvergenceWarning, stacklevel=3)
    inv = torch.empty(pi.numel(), dtype=torch.long)
    inv[torch.cat(order)] = torch.arange(pi.numel())
    return torch.cat(vals)[inv]


def exact_label_distances(
    X1: Tensor, l1: Tensor, C1: int, X2: Tensor, l2: Tensor, C2: int, p: float = 2.0,
    method: str = "auto", solver: SinkhornConfig | None = None, symmetric: bool = False,
    chunk_elements: int = 1 << 24,
) -> Tensor:
    """``W_p^p`` between the empirical class distributions (OT between the class samples).

    ``method`` (see :func:`exact_label_path`): ``"auto"``/``"batched"`` solve all class pairs in
    batched Sinkhorn runs (batches of similar class sizes) at the small relative epsilon
    :data:`EXACT_EPSILON`, each value certified within :data:`EXACT_RTOL` of exact OT, ``"emd"``
    calls POT's exact solver pair by pair, ``"sinkhorn"`` solves pair by pair with ``solver``'s
    settings. ``symmetric=True`` (the same dataset twice): only the pairs ``i < j`` are
    solved, the diagonal is 0. Gradients flow to ``X1``/``X2`` (envelope theorem for the entropic
    paths). ``chunk_elements`` bounds the padded entries of one batch.
    """
    path = exact_label_path(method)
    solver = solver or SinkhornConfig()
    if path == "batched" and X1.shape[1] > 1:
        # feature columns that are zero on both sides change no cost (nor gradient): MNIST's borders
        used = (X1 != 0).any(0) if symmetric else (X1 != 0).any(0) | (X2 != 0).any(0)
        if not bool(used.all()):
            X1, X2 = X1[:, used], X2[:, used]
    g1 = [X1[l1 == c] for c in range(C1)]
    g2 = g1 if symmetric else [X2[l2 == c] for c in range(C2)]
    if symmetric:
        pi, pj = torch.triu_indices(C1, C1, 1)
        if path == "batched":  # W(i, j) = W(j, i): put the larger class first, fewer shapes to pad
            n = torch.tensor([g.shape[0] for g in g1])
            swap = n[pi] < n[pj]
            pi, pj = torch.where(swap, pj, pi), torch.where(swap, pi, pj)
    else:
        pi, pj = torch.arange(C1).repeat_interleave(C2), torch.arange(C2).repeat(C1)
    if path == "batched":
        vals = (_batched_pairs(g1, g2, pi, pj, p, solver.max_iter, chunk_elements, symmetric)
                if pi.numel() else X1.new_zeros(0))
    else:
        out = []
        for i, j in zip(pi.tolist(), pj.tolist()):
            Cab = pairwise_cost(g1[i], g2[j], p)
            if path == "emd":
                out.append(emd2_differentiable(Cab))
                continue
            scale = MatrixCost(Cab).mean_value()
            r = sinkhorn(None, None, Cab, solver.absolute_epsilon(scale or 1.0), solver)
            out.append(r.transport_cost + (r.loss - r.loss.detach()))  # value <pi,C>, envelope gradient
        vals = torch.stack(out) if out else X1.new_zeros(0)
    W = X1.new_zeros(C1, C1 if symmetric else C2).index_put((pi.to(X1.device), pj.to(X1.device)), vals.to(X1.dtype))
    return W + W.T if symmetric else W
