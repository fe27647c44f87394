"""Entropic OT on a truncated kernel, certified on the full cost: the ``"sparse"`` backend.

At a small epsilon an entropic plan puts its mass on few entries: ``pi_ij = a_i b_j exp((f_i + g_j -
C_ij) / eps)`` is below ``exp(-30)`` of its row's share almost everywhere. A problem too big to
store (60,000 x 60,000 float32 costs are 14 GB) is solved in four steps, with two passes over the
full cost (row blocks, one matrix product each, at the machine's GEMM rate) instead of one pass per
iteration:

1. **coarse potentials**: the same problem on a random subsample of rows and columns (dense,
   a few thousand points), extended to every point by one c-transform;
2. **support**: one pass keeps, for each row, its ``k`` entries of largest ``(f_i + g_j - C_ij)``
   and every entry within ``threshold`` epsilons of the potentials' bound (the columns' mass), at
   most ``2 k`` per row (12 bytes each);
3. **iterations** on that support (warm-started scaling iterations with sparse matrix-vector
   products, ``O(nnz)`` each, the scalings absorbed into the potentials as in the dense solver);
4. **certificate**: one pass evaluates both marginals of the plan on the *full* cost, the exact
   row update and the transport cost ``<pi, C>``. If a marginal is off by more than ``tol``, the
   support is rebuilt once around the better potentials (``2 k`` entries, a threshold 15 wider);
   the caller continues in the log domain on the full cost if that fails too, so the answer is
   never a truncation artefact.
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
                      block_elements: int, size: int = COARSE_SIZE, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Potentials of the problem on ``size`` random rows and columns (weights renormalised), extended
    to every row and column by a c-transform."""
    from .sinkhorn import _Engine, sinkhorn

    gen = torch.Generator().manual_seed(seed)
    ri = torch.randperm(cost.n, generator=gen)[:size].sort().values.to(cost.device)
    cj = ri if symmetric else torch.randperm(cost.m, generator=gen)[:size].sort().values.to(cost.device)
    sub = cost.subset(ri, cj)
    wa, wb = a[ri] / a[ri].sum(), b[cj] / b[cj].sum()
    r = sinkhorn(wa, wb, sub, eps, symmetric=symmetric, differentiable=False, tol=1e-3, strict=False,
                 backend="dense")
    la, lb = wa.log(), wb.log()
    # g_j = -eps LSE_{i in S} (f_i / eps + log a_i - C_ij / eps), over all columns j
    g = -eps * _Engine(cost.subset(ri, None), "online", 0, block_elements).col_lse(r.f / eps + la, eps)
    if symmetric:
        return g, g
    f = -eps * _Engine(cost.subset(None, cj), "online", 0, block_elements).row_lse(r.g / eps + lb, eps)
    return f, g


def select_support(cost: PointCloudCost, f: Tensor, g: Tensor, eps: float, k: int, threshold: float,
                   block_elements: int, symmetric: bool = False) -> SparseSupport:
    """One pass over the cost keeping each row's ``k`` entries of largest ``s_ij = (f_i + g_j -
    C_ij) / eps`` and every entry with ``s_ij > -threshold``. A symmetric problem (``f = g``,
    ``C = C^T``) keeps the threshold set alone, which is symmetric (its diagonal ``2 f_i / eps`` is
    each row's largest score in practice; the certificate checks the rest)."""
    rows, cols, vals = [], [], []
    k = min(k, cost.m)
    with torch.no_grad():
        for i0, i1, Cb in _blocks(cost, block_elements):
            S = (f[i0:i1].unsqueeze(1) + g.unsqueeze(0) - Cb).div_(eps)
            keep = S > -threshold
            if int(keep.sum()) > 2 * k * (i1 - i0):  # loose potentials: bound the memory
                keep.zero_()
                keep.scatter_(1, S.topk(min(2 * k, cost.m), dim=1).indices, True)
            elif not symmetric:  # (symmetric: S is, so the threshold alone keeps a symmetric support)
                keep.scatter_(1, S.topk(k, dim=1).indices, True)
            r, c = keep.nonzero(as_tuple=True)
            vals.append(Cb[r, c])
            rows.append((r + i0).to(torch.int32))
            cols.append(c.to(torch.int32))
    return SparseSupport(torch.cat(rows), torch.cat(cols), torch.cat(vals), cost.n, cost.m, symmetric)


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


def certify(cost: PointCloudCost, f: Tensor, g: Tensor, loga: Tensor, logb: Tensor, eps: float,
            block_elements: int):
    """One pass over the full cost: the exact row update ``T(g)``, the column update ``T(f)``, the
    L1 errors of both marginals of the plan of ``(f, g)`` and its transport cost ``<pi, C>``."""
    Tf = torch.empty_like(f)
    col_parts, tc = [], 0.0
    h = g / eps + logb
    kf = f / eps + loga
    with torch.no_grad():
        for i0, i1, Cb in _blocks(cost, block_elements):
            L = torch.sub(h.unsqueeze(0), Cb, alpha=1.0 / eps)  # log(b_j K_ij) + g_j / eps
            mx = L.amax(1, keepdim=True)
            E = (L - mx).exp_()
            Tf[i0:i1] = -eps * (mx.squeeze(1) + E.sum(1).log())
            # plan entries: pi_ij = exp(k_i + L_ij)
            P = E.mul_((kf[i0:i1].unsqueeze(1) + mx).exp())
            tc += float((P * Cb).sum(dtype=torch.float64))
            col_parts.append(P.sum(0, dtype=torch.float64))
    col = torch.stack(col_parts).sum(0)
    row_err = float((loga.exp() * ((f - Tf) / eps).exp().sub(1).abs()).sum())
    col_err = float((col - logb.exp().double()).abs().sum())
    return Tf, row_err, col_err, tc


def solve_sparse(cost: PointCloudCost, a: Tensor, b: Tensor, eps: float, symmetric: bool, max_iter: int,
                 tol: float, block_elements: int, overrelax: float = 1.5, k: int = DEFAULT_K,
                 threshold: float = DEFAULT_THRESHOLD):
    """Steps 1-4 of the module docstring. Returns ``f, g, iterations, error, converged, transport
    cost, nnz`` (error: the larger certified marginal error; ``converged``: below ``tol``)."""
    loga, logb = a.log(), b.log()
    with torch.no_grad():
        f, g = coarse_potentials(cost, a, b, eps, symmetric, block_elements)
        total, err, tc, nnz, Tf = 0, math.inf, float("nan"), 0, f
        for attempt in range(2):
            sup = select_support(cost, f, g, eps, k << attempt, threshold + 15.0 * attempt, block_elements, symmetric)
            nnz = sup.nnz
            f1, g1, it, _ = sparse_iterations(sup, f, g, a, b, eps, max_iter, 0.5 * tol, overrelax)
            total += it
            del sup
            if not bool(torch.isfinite(f1).all() and torch.isfinite(g1).all()):
                continue  # a row or column without support: keep the earlier potentials
            f, g = f1, g1
            Tf, row_err, col_err, tc = certify(cost, f, g, loga, logb, eps, block_elements)
            err = max(row_err, col_err)
            if err < tol:
                break
        f_out = 0.5 * (f + Tf) if symmetric else Tf
        return f_out, (f_out if symmetric else g), total, err, err < tol, tc, nnz
