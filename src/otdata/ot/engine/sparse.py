"""The sparse backend: entropic OT on a truncated kernel, certified on the full cost.

At a small epsilon an entropic plan puts its mass on few entries: ``pi_ij = a_i b_j exp((f_i + g_j -
C_ij) / eps)`` is below ``exp(-30)`` of its row's share almost everywhere. A problem too big to
store (60,000 x 60,000 float32 costs are 14 GB) is solved with **one pass** over the full cost
(blocks of rows, one matrix product each, at the machine's GEMM rate; a symmetric problem computes
each pair of row blocks once, half the products):

1. **coarse potentials**: the same problem on a random subsample of rows and columns (dense,
   a few thousand points), extended to every point by one c-transform (a symmetric problem keeps
   each point's own term exact, :func:`_symmetric_extension`). Its plan also predicts
   whether a truncation can hold the mass: when the coarse rows spread their mass over more
   entries than the support may keep, the truncation is skipped (it could not be certified);
2. **support** (:mod:`.support`): one pass keeps the entries with score ``s_ij = (f_i + g_j - C_ij) / eps`` above
   a threshold (``-threshold``, or higher where a sample of rows shows that more would not fit the
   memory budget; for a non-symmetric problem also each row's ``k`` largest, at most ``2 k`` per
   row), 12 bytes each, and records for every row the weighted mass it leaves out,
   ``X_i = sum_{j not kept} b_j exp(s_ij)`` (one ``exp`` of the block and a matrix-vector product);
3. **iterations** on that support (the warm-started scaling iterations of :mod:`.scaling` with
   sparse matrix-vector products, ``O(nnz)`` each, the scalings absorbed as in the dense backend);
4. **certificate**, without another pass: both marginals and ``<pi, C>`` on the support, plus a
   bound of the mass left out. For the final ``(f, g)`` an entry outside the support has score
   ``s_ij + (f_i - f0_i + g_j - g0_j) / eps`` where ``(f0, g0)`` selected it, so row ``i`` misses
   at most ``a_i X_i exp((f_i - f0_i + max_j (g_j - g0_j)) / eps)``. The reported marginal errors
   are the support's plus the sum of these: upper bounds of the errors on the **full** problem. If
   they exceed ``tol``, the support is rebuilt once around the final potentials with twice the
   entries; the caller continues with full passes (log domain) from the best potentials if that
   fails too, so a truncation is never reported as converged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._exp import exp_
from ..costs import PointCloudCost
from .online import RowBlocks
from .scaling import OverRelaxation, scaling_loop
from .support import DEFAULT_K, DEFAULT_THRESHOLD, SparseSupport, chunks, select_support

#: rows and columns of the coarse subsample problem.
COARSE_SIZE = 3000
#: a symmetric support leaves out at most this many ``tol`` of the mass (estimated on a row sample).
MASS_TARGET = 0.05
#: the coarse plan's missing mass decides: above this many ``tol`` the truncation is skipped (the
#: plan is diffuse); above ``tol`` one truncated solve only warm-starts the full passes.
DIFFUSE_FACTOR = 100.0


def coarse_potentials(cost: PointCloudCost, a: Tensor, b: Tensor, eps: float, symmetric: bool,
                      block_elements: int, solve, size: int = COARSE_SIZE, seed: int = 0, budget: int = 0):
    """Potentials of the problem on ``size`` random rows and columns (weights renormalised), extended
    to every row and column by a c-transform. ``solve(a, b, cost, eps, symmetric)``: the dense
    solver of the subsample problem (the front door's, given by the caller). Returns ``f, g, missing``: ``missing`` is the mass of
    the coarse plan outside each row's ``max(budget * size / m, budget / 4)`` largest entries (the
    share of columns a support of ``budget`` entries per row would keep; 0 when ``budget`` is 0)."""
    gen = torch.Generator().manual_seed(seed)
    ri = torch.randperm(cost.n, generator=gen)[:size].sort().values.to(cost.device)
    cj = ri if symmetric else torch.randperm(cost.m, generator=gen)[:size].sort().values.to(cost.device)
    sub = cost.subset(ri, cj)
    wa, wb = a[ri] / a[ri].sum(), b[cj] / b[cj].sum()
    r = solve(wa, wb, sub, eps, symmetric)
    la, lb = wa.log(), wb.log()
    missing = 0.0
    if budget and r.converged:
        # the budget's share of the coarse columns, but never under a quarter of the budget: a
        # concentrated plan (a self term) keeps its few heavy entries at any size
        keep = max(1, int(budget * len(cj) / cost.m), budget // 4)
        if keep < len(cj):
            P = (r.f.unsqueeze(1) + r.g.unsqueeze(0) - sub.dense()).div_(eps).add_(la.unsqueeze(1)).add_(lb)
            exp_(P)
            missing = float(P.sum() - P.topk(keep, dim=1).values.sum())
            del P
    # g_j = -eps LSE_{i in S} (f_i / eps + log a_i - C_ij / eps), over all columns j
    g = -eps * RowBlocks(cost.subset(ri, None), block_elements).col_lse(r.f / eps + la, eps)
    if symmetric:
        f = _symmetric_extension(g, r.f / eps + la, ri, a, eps)
        return f, f, missing
    f = -eps * RowBlocks(cost.subset(None, cj), block_elements).row_lse(r.g / eps + lb, eps)
    return f, g, missing


def _symmetric_extension(g: Tensor, own: Tensor, ri: Tensor, a: Tensor, eps: float) -> Tensor:
    """Potentials of a symmetric problem from its subsample's: the fixed point ``exp(-f_j / eps) =
    a_j exp(f_j / eps) + A_j`` of the full problem with the point's own term kept exact (``C_jj =
    0``) and the others, ``A_j = sum_{i != j} a_i exp((f_i - C_ij) / eps)``, estimated on the
    subsample (``-eps log A_j`` is its c-transform ``g``, less the point's own term for subsample
    points). The plain c-transform leaves out the own term, which dominates at a small epsilon:
    points far from the subsample get potentials many epsilons too large, and a support selected
    with them misses the mass."""
    logA = (-g / eps).double()
    la = logA[ri]  # own: log of the subsample point's own term in that sum, f_i / eps + log a_i
    logA[ri] = la + torch.log1p(-torch.exp(own.double() - la).clamp(max=1.0 - 1e-12))
    A, w = logA.exp(), a.double()
    # a_j z^2 + A_j z - 1 = 0 with z = exp(f_j / eps), solved without cancellation
    z = 2.0 / (A + (A * A + 4.0 * w).sqrt())
    return (eps * z.log()).to(g.dtype)


def sparse_iterations(sup: SparseSupport, f: Tensor, g: Tensor, a: Tensor, b: Tensor, eps: float,
                      max_iter: int, tol: float, omega: float):
    """Over-relaxed scaling iterations (:func:`.scaling.scaling_loop`) on the support (sparse
    matrix-vector products), from the potentials ``(f, g)``, absorbing the scalings into them when
    they grow; returns ``f, g, iterations, error`` (L1 column-marginal error on the support)."""
    it, err = 0, math.inf
    step = OverRelaxation(omega)
    while it < max_iter:
        K, KT, f, u = sup.kernels(f, g, eps)
        u, v, used, err, converged = scaling_loop(K.__matmul__, KT.__matmul__, a, b, u, torch.ones_like(g),
                                                  max_iter - it, tol, sup.symmetric, step)
        it += used
        f = f + eps * u.log()
        g = f if sup.symmetric else g + eps * v.log()
        if converged:
            break
    return f, g, it, err


def certify(sup: SparseSupport, f: Tensor, g: Tensor, f0: Tensor, g0: Tensor, logx: Tensor, a: Tensor,
            b: Tensor, eps: float):
    """Certificate of the potentials ``(f, g)`` on the full problem without a pass over it: the
    marginals and ``<pi, C>`` of the plan on the support (float64) and ``out``, a bound of the plan's
    mass outside it from ``logx = log X`` of the selection with ``(f0, g0)`` (module docstring,
    step 4). Returns ``row_err, col_err, tc, out`` where the
    errors are upper bounds of the L1 marginal errors of the full plan."""
    with torch.no_grad():
        f64, g64, a64, b64 = f.double(), g.double(), a.double(), b.double()
        row = torch.zeros(sup.n, dtype=torch.float64, device=f.device)
        col = torch.zeros(sup.m, dtype=torch.float64, device=f.device)
        tc = 0.0
        for c0, c1 in chunks(sup.nnz):  # float64 in chunks of entries
            rows, cols, v = sup.rows[c0:c1].long(), sup.cols[c0:c1].long(), sup.vals[c0:c1].double()
            P = (f64[rows] + g64[cols] - v).div_(eps).exp_().mul_(a64[rows]).mul_(b64[cols])
            row.index_add_(0, rows, P)
            col.index_add_(0, cols, P)
            tc += float(P @ v)
        dg = float(((g - g0) / eps).max())
        out = float((a.double() * (logx.double() + (f - f0).double() / eps + dg).exp()).sum())
        row_err = float((row - a.double()).abs().sum()) + out
        col_err = float((col - b.double()).abs().sum()) + out
    return row_err, col_err, tc, out


def solve_sparse(cost: PointCloudCost, a: Tensor, b: Tensor, eps: float, symmetric: bool, max_iter: int,
                 tol: float, block_elements: int, overrelax: float = 1.5, k: int = DEFAULT_K,
                 threshold: float = DEFAULT_THRESHOLD, log=None, coarse=None):
    """Steps 1-4 of the module docstring; ``coarse``: the dense solver of step 1 (see
    :func:`coarse_potentials`). Returns ``f, g, iterations, error, converged, transport
    cost, nnz`` (error: the larger certified bound of the marginal errors on the full problem;
    ``converged``: below ``tol``, with the bound of ``<pi, C>``'s missing part below ``tol`` times the
    cost of the independent coupling, the scale of a relative epsilon).
    When not converged, ``f, g`` are the best potentials found (the coarse ones extended, when the
    truncation was skipped): a warm start for full passes."""
    say = log or (lambda msg: None)
    with torch.no_grad():
        f, g, missing = coarse_potentials(cost, a, b, eps, symmetric, block_elements, solve=coarse, budget=2 * k)
        if missing > DIFFUSE_FACTOR * tol:
            say(f"sparse: the coarse plan leaves {missing:.1e} of its mass outside {2 * k} entries per row: "
                "no truncation")
            return f, g, 0, math.inf, False, math.nan, 0
        # <pi, C> misses at most out * max C: certified when that is below tol times the cost scale
        cmax, scale = cost.max_value(), cost.mean_value(a, b)
        total, err, tc, nnz = 0, math.inf, math.nan, 0
        warm_only = missing > tol  # cannot be certified: potentials for the full passes
        for attempt in range(1 if warm_only else 2):
            sup, logx = select_support(cost, f, g, eps, k << attempt, threshold, block_elements, symmetric, b,
                                       MASS_TARGET * tol)
            nnz = sup.nnz
            inner_tol = max(0.5 * tol, 0.1 * missing) if warm_only else 0.5 * tol
            f1, g1, it, _ = sparse_iterations(sup, f, g, a, b, eps, max_iter, inner_tol, overrelax)
            total += it
            if not bool(torch.isfinite(f1).all() and torch.isfinite(g1).all()):
                del sup
                break  # a row or column without support: keep the earlier potentials
            row_err, col_err, tc, out = certify(sup, f1, g1, f, g, logx, a, b, eps)
            del sup
            f, g = f1, g1
            err = max(row_err, col_err)
            say(f"sparse attempt {attempt + 1}: {nnz:,} entries, {it} iterations, certified marginal error "
                f"{err:.2e} (missing mass <= {out:.1e})" + (
                    f"; the coarse plan missed {missing:.1e}: a warm start for full passes" if warm_only else ""))
            if err < tol and out * cmax <= tol * scale:
                return f, g, total, err, True, tc, nnz
        return f, g, total, err, False, tc, nnz
