"""Entropic OT on a truncated kernel, certified on the full cost: the ``"sparse"`` backend.

At a small epsilon an entropic plan puts its mass on few entries: ``pi_ij = a_i b_j exp((f_i + g_j -
C_ij) / eps)`` is below ``exp(-30)`` of its row's share almost everywhere. A problem too big to
store (60,000 x 60,000 float32 costs are 14 GB) is solved with **one pass** over the full cost
(blocks of rows, one matrix product each, at the machine's GEMM rate; a symmetric problem computes
each pair of row blocks once, half the products):

1. **coarse potentials**: the same problem on a random subsample of rows and columns (dense,
   a few thousand points), extended to every point by one c-transform. Its plan also predicts
   whether a truncation can hold the mass: when the coarse rows spread their mass over more
   entries than the support may keep, the truncation is skipped (it could not be certified);
2. **support**: one pass keeps the entries with score ``s_ij = (f_i + g_j - C_ij) / eps`` above
   ``-threshold`` (for a non-symmetric problem also each row's ``k`` largest, and at most ``2 k``
   per row), 12 bytes each, and records for every row an upper bound ``m_i`` of the scores it
   leaves out;
3. **iterations** on that support (warm-started scaling iterations with sparse matrix-vector
   products, ``O(nnz)`` each, the scalings absorbed into the potentials as in the dense solver);
4. **certificate**, without another pass: both marginals and ``<pi, C>`` on the support, plus a
   bound of the mass left out. An entry outside the support had score ``<= m_i`` for the potentials
   ``(f0, g0)`` of step 2, so for the final ``(f, g)`` its score is at most ``m_i + (f_i - f0_i +
   max_j (g_j - g0_j)) / eps`` and the row's missing mass at most ``a_i exp(that)``. The reported
   marginal errors are the support's plus that bound: upper bounds of the errors on the **full**
   problem. If they exceed ``tol``, the support is rebuilt once around the final potentials with
   twice the entries; the caller continues with full passes (log domain) if that fails too, so a
   truncation is never reported as converged.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from .costs import PointCloudCost

#: entries kept per row, and the threshold (in epsilons below the potentials' bound) for the rest.
DEFAULT_K = 256
DEFAULT_THRESHOLD = 30.0
_ABSORB = 20.0
#: rows and columns of the coarse subsample problem.
COARSE_SIZE = 3000
#: rows (and columns) of a tile in a symmetric problem's half pass.
TILE = 2048
#: the truncation is skipped when the coarse plan predicts a missing mass above this many ``tol``.
DIFFUSE_FACTOR = 10.0


class SparseSupport:
    """Edges ``(rows, cols)`` of a truncated cost (sorted by row) and their cost values, with the
    column-sorted order kept for the transposed products. ``symmetric``: the support is closed
    under transposition, so ``K`` is its own transpose and the averaged symmetric update applies."""

    def __init__(self, rows: Tensor, cols: Tensor, vals: Tensor, n: int, m: int, symmetric: bool = False):
        # int32 indices (CSR accepts them): 12 bytes per kept entry
        self.rows, self.cols, self.vals, self.n, self.m = rows, cols, vals, n, m
        self.symmetric = symmetric
        self.crow = torch.zeros(n + 1, dtype=torch.int32, device=rows.device)
        self.crow[1:] = torch.bincount(rows, minlength=n).cumsum(0)
        self.perm = None if symmetric else torch.argsort(cols, stable=True)
        self.ccol = torch.zeros(m + 1, dtype=torch.int32, device=rows.device)
        self.ccol[1:] = torch.bincount(cols, minlength=m).cumsum(0)
        self.rows_t = None if symmetric else rows[self.perm]

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    def kernels(self, f: Tensor, g: Tensor, eps: float):
        """``K_ij = exp((f_i + g_j - C_ij) / eps)`` on the support, each row's maximum shifted to 1
        (the shift moved into ``f``), as CSR matrices ``K`` and ``K^T``; returns ``K, K^T, f, u0``."""
        T = (f[self.rows] + g[self.cols] - self.vals).div_(eps)
        s = torch.full((self.n,), -math.inf, dtype=T.dtype, device=T.device).scatter_reduce(
            0, self.rows.long(), T, "amax")
        s = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
        if self.symmetric:  # half the shift on each side keeps K symmetric
            s = 0.5 * s
            T.sub_(s[self.cols])
        K = T.sub_(s[self.rows]).exp_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's sparse CSR beta notice
            Kr = torch.sparse_csr_tensor(self.crow, self.cols, K, (self.n, self.m))
            Kc = Kr if self.symmetric else torch.sparse_csr_tensor(self.ccol, self.rows_t, K[self.perm],
                                                                   (self.m, self.n))
        return Kr, Kc, f - eps * s, s.clamp(-_ABSORB, _ABSORB).exp()


def _blocks(cost: PointCloudCost, block_elements: int):
    step = max(1, block_elements // max(cost.m, 1))
    for i0 in range(0, cost.n, step):
        i1 = min(cost.n, i0 + step)
        yield i0, i1, cost.block(i0, i1)


def coarse_potentials(cost: PointCloudCost, a: Tensor, b: Tensor, eps: float, symmetric: bool,
                      block_elements: int, size: int = COARSE_SIZE, seed: int = 0, budget: int = 0):
    """Potentials of the problem on ``size`` random rows and columns (weights renormalised), extended
    to every row and column by a c-transform. Returns ``f, g, missing``: ``missing`` is the mass of
    the coarse plan outside each row's ``budget * size / m`` largest entries (the share of columns a
    support of ``budget`` entries per row would keep; 0 when ``budget`` is 0)."""
    from .sinkhorn import _Engine, sinkhorn

    gen = torch.Generator().manual_seed(seed)
    ri = torch.randperm(cost.n, generator=gen)[:size].sort().values.to(cost.device)
    cj = ri if symmetric else torch.randperm(cost.m, generator=gen)[:size].sort().values.to(cost.device)
    sub = cost.subset(ri, cj)
    wa, wb = a[ri] / a[ri].sum(), b[cj] / b[cj].sum()
    r = sinkhorn(wa, wb, sub, eps, symmetric=symmetric, differentiable=False, tol=1e-3, strict=False,
                 backend="dense")
    la, lb = wa.log(), wb.log()
    missing = 0.0
    if budget and r.converged:
        keep = max(1, int(budget * len(cj) / cost.m))
        if keep < len(cj):
            P = (r.f.unsqueeze(1) + r.g.unsqueeze(0) - sub.dense()).div_(eps).add_(la.unsqueeze(1)).add_(lb).exp_()
            missing = float(P.sum() - P.topk(keep, dim=1).values.sum())
            del P
    # g_j = -eps LSE_{i in S} (f_i / eps + log a_i - C_ij / eps), over all columns j
    g = -eps * _Engine(cost.subset(ri, None), "online", 0, block_elements).col_lse(r.f / eps + la, eps)
    if symmetric:
        return g, g, missing
    f = -eps * _Engine(cost.subset(None, cj), "online", 0, block_elements).row_lse(r.g / eps + lb, eps)
    return f, g, missing


def select_support(cost: PointCloudCost, f: Tensor, g: Tensor, eps: float, k: int, threshold: float,
                   block_elements: int, symmetric: bool = False):
    """One pass over the cost keeping the entries that can carry mass; returns the support and, per
    row, an upper bound ``m_i`` of the scores ``s_ij = (f_i + g_j - C_ij) / eps`` it leaves out.

    Non-symmetric: each row keeps its ``k`` largest scores and every score above ``-threshold``,
    at most ``2 k`` (then the ``2 k`` largest). Symmetric (``f = g``, ``C = C^T``):
    :func:`select_symmetric`."""
    if symmetric:
        return select_symmetric(cost, f, eps, k, threshold)
    rows, cols, vals = [], [], []
    k = min(k, cost.m)
    mrow = torch.full((cost.n,), -threshold, dtype=f.dtype, device=f.device)
    with torch.no_grad():
        for i0, i1, Cb in _blocks(cost, block_elements):
            S = torch.sub(g.unsqueeze(0), Cb).add_(f[i0:i1].unsqueeze(1)).div_(eps)
            keep = S > -threshold
            over = keep.sum(1) > 2 * k
            if bool(over.any()):  # loose potentials: bound the memory (those rows keep their 2k best)
                top = S[over].topk(min(2 * k, cost.m), dim=1)
                sub = torch.zeros_like(keep[over]).scatter_(1, top.indices, True)
                keep[over] = sub
                mrow[i0:i1][over] = torch.maximum(top.values[:, -1], mrow[i0:i1][over])
            keep.scatter_(1, S.topk(k, dim=1).indices, True)
            r, c = keep.nonzero(as_tuple=True)
            vals.append(Cb[r, c])
            rows.append((r + i0).to(torch.int32))
            cols.append(c.to(torch.int32))
    return SparseSupport(torch.cat(rows), torch.cat(cols), torch.cat(vals), cost.n, cost.m), mrow


def select_symmetric(cost: PointCloudCost, f: Tensor, eps: float, k: int, threshold: float, tile: int = TILE):
    """Half pass over a symmetric cost: tiles ``(I, J)`` with ``J >= I`` only (the diagonal tiles'
    upper triangle), each entry kept on both sides, so the support is exactly symmetric (its values
    too). Keeps every score above a global threshold ``t`` (start ``-threshold``) and the
    diagonal; when the kept entries exceed ``k n`` (upper half; ``2 k`` per row on average), ``t``
    is raised to halve them and the entries below it are dropped. Every row's bound is the final
    ``t``."""
    n = cost.n
    t = -threshold
    budget = max(k * n, n)
    R, Cc, V = [], [], []
    total = 0
    with torch.no_grad():
        for i0 in range(0, n, tile):
            i1 = min(n, i0 + tile)
            for j0 in range(i0, n, tile):
                j1 = min(n, j0 + tile)
                Ct = cost.tile(i0, i1, j0, j1)
                S = torch.sub(f[j0:j1].unsqueeze(0), Ct).add_(f[i0:i1].unsqueeze(1)).div_(eps)
                keep = S > t
                if j0 == i0:
                    keep.triu_()
                    keep.diagonal().fill_(True)
                r, c = keep.nonzero(as_tuple=True)
                R.append((r + i0).to(torch.int32))
                Cc.append((c + j0).to(torch.int32))
                V.append(Ct[r, c])
                total += int(r.numel())
                if total > budget:  # raise t to the median score of the kept entries
                    R, Cc, V = [torch.cat(R)], [torch.cat(Cc)], [torch.cat(V)]
                    s = (f[R[0]] + f[Cc[0]] - V[0]).div_(eps)
                    t = max(t, float(s.median()))
                    keep = (s > t) | (R[0] == Cc[0])
                    R, Cc, V = [R[0][keep]], [Cc[0][keep]], [V[0][keep]]
                    total = int(keep.sum())
        r, c, v = torch.cat(R), torch.cat(Cc), torch.cat(V)
        off = r != c
        rows, cols, vals = torch.cat([r, c[off]]), torch.cat([c, r[off]]), torch.cat([v, v[off]])
        del r, c, v, off, R, Cc, V
        order = torch.argsort(rows.long() * n + cols.long())
        rows, cols, vals = rows[order], cols[order], vals[order]
    mrow = torch.full((n,), t, dtype=f.dtype, device=f.device)
    return SparseSupport(rows, cols, vals, n, n, symmetric=True), mrow


def sparse_iterations(sup: SparseSupport, f: Tensor, g: Tensor, a: Tensor, b: Tensor, eps: float,
                      max_iter: int, tol: float, omega: float):
    """Over-relaxed scaling iterations on the support (sparse matrix-vector products), from the
    potentials ``(f, g)``, absorbing the scalings into them when they grow; returns ``f, g,
    iterations, error`` (L1 column-marginal error on the support)."""
    tiny = torch.finfo(f.dtype).tiny
    it, err, best = 0, math.inf, math.inf
    while it < max_iter:
        K, KT, f, u = sup.kernels(f, g, eps)
        v = torch.ones_like(g)
        while it < max_iter and sup.symmetric:  # averaged symmetric update u <- sqrt(u / K(a u))
            s = (K @ (a * u)).clamp_min_(tiny)
            err = float((a * (u * s - 1).abs()).sum())
            u = (u / s).sqrt_()
            it += 1
            if err < tol or float(u.log().abs().max()) > _ABSORB:
                break
        while it < max_iter and not sup.symmetric:
            un = (K @ (b * v)).clamp_min_(tiny).reciprocal_()
            u = un if omega == 1.0 else u.pow(1.0 - omega).mul_(un.pow_(omega))
            c = (KT @ (a * u)).clamp_min_(tiny)
            err = float((b * (v * c - 1).abs()).sum())
            v = c.reciprocal_() if omega == 1.0 else v.pow(1.0 - omega).mul_(c.pow_(-omega))
            it += 1
            best = min(best, err)
            if omega != 1.0 and err > 10.0 * best:  # over-relaxation diverging: plain updates
                omega = 1.0
            if err < tol or float(torch.maximum(u.log().abs().max(), v.log().abs().max())) > _ABSORB:
                break
        f = f + eps * u.log()
        g = f if sup.symmetric else g + eps * v.log()
        if err < tol:
            break
    return f, g, it, err


def certify(sup: SparseSupport, f: Tensor, g: Tensor, f0: Tensor, g0: Tensor, mrow: Tensor, a: Tensor,
            b: Tensor, eps: float):
    """Certificate of the potentials ``(f, g)`` on the full problem without a pass over it: the
    marginals and ``<pi, C>`` of the plan on the support (float64) and ``out``, a bound of the plan's
    mass outside it (module docstring, step 4). Returns ``row_err, col_err, tc, out`` where the
    errors are upper bounds of the L1 marginal errors of the full plan."""
    with torch.no_grad():
        rows, cols = sup.rows.long(), sup.cols.long()
        P = (f[rows].double() + g[cols].double() - sup.vals.double()).div_(eps).exp_()
        P.mul_(a.double()[rows]).mul_(b.double()[cols])
        row = torch.zeros(sup.n, dtype=torch.float64, device=f.device).index_add_(0, rows, P)
        col = torch.zeros(sup.m, dtype=torch.float64, device=f.device).index_add_(0, cols, P)
        tc = float((P * sup.vals.double()).sum())
        del P
        dg = float(((g - g0) / eps).max())
        out = float((a.double() * (mrow.double() + (f - f0).double() / eps + dg).exp()).sum())
        row_err = float((row - a.double()).abs().sum()) + out
        col_err = float((col - b.double()).abs().sum()) + out
    return row_err, col_err, tc, out


def solve_sparse(cost: PointCloudCost, a: Tensor, b: Tensor, eps: float, symmetric: bool, max_iter: int,
                 tol: float, block_elements: int, overrelax: float = 1.5, k: int = DEFAULT_K,
                 threshold: float = DEFAULT_THRESHOLD, log=None):
    """Steps 1-4 of the module docstring. Returns ``f, g, iterations, error, converged, transport
    cost, nnz`` (error: the larger certified bound of the marginal errors on the full problem;
    ``converged``: below ``tol``, with the bound of ``<pi, C>``'s missing part below ``tol`` times the
    cost of the independent coupling, the scale of a relative epsilon).
    When not converged, ``f, g`` are the best potentials found (the coarse ones extended, when the
    truncation was skipped): a warm start for full passes."""
    say = log or (lambda msg: None)
    with torch.no_grad():
        f, g, missing = coarse_potentials(cost, a, b, eps, symmetric, block_elements, budget=2 * k)
        if missing > DIFFUSE_FACTOR * tol:
            say(f"sparse: the coarse plan leaves {missing:.1e} of its mass outside {2 * k} entries per row: "
                "no truncation")
            return f, g, 0, math.inf, False, math.nan, 0
        # <pi, C> misses at most out * max C: certified when that is below tol times the cost scale
        cmax, scale = cost.max_value(), cost.mean_value(a, b)
        total, err, tc, nnz = 0, math.inf, math.nan, 0
        for attempt in range(2):
            sup, mrow = select_support(cost, f, g, eps, k << attempt, threshold, block_elements, symmetric)
            nnz = sup.nnz
            f1, g1, it, _ = sparse_iterations(sup, f, g, a, b, eps, max_iter, 0.5 * tol, overrelax)
            total += it
            if not bool(torch.isfinite(f1).all() and torch.isfinite(g1).all()):
                del sup
                break  # a row or column without support: keep the earlier potentials
            row_err, col_err, tc, out = certify(sup, f1, g1, f, g, mrow, a, b, eps)
            del sup
            f, g = f1, g1
            err = max(row_err, col_err)
            say(f"sparse attempt {attempt + 1}: {nnz:,} entries, {it} iterations, certified marginal error "
                f"{err:.2e} (missing mass <= {out:.1e})")
            if err < tol and out * cmax <= tol * scale:
                return f, g, total, err, True, tc, nnz
        return f, g, total, err, False, tc, nnz
