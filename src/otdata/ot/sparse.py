"""Entropic OT on a truncated kernel, certified on the full cost: the ``"sparse"`` backend.

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
2. **support**: one pass keeps the entries with score ``s_ij = (f_i + g_j - C_ij) / eps`` above
   a threshold (``-threshold``, or higher where a sample of rows shows that more would not fit the
   memory budget; for a non-symmetric problem also each row's ``k`` largest, at most ``2 k`` per
   row), 12 bytes each, and records for every row the weighted mass it leaves out,
   ``X_i = sum_{j not kept} b_j exp(s_ij)`` (one ``exp`` of the block and a matrix-vector product);
3. **iterations** on that support (warm-started scaling iterations with sparse matrix-vector
   products, ``O(nnz)`` each, the scalings absorbed into the potentials as in the dense solver);
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
import warnings

import torch
from torch import Tensor

from .costs import PointCloudCost
from ._exp import exp_

#: entries kept per row, and the threshold (in epsilons below the potentials' bound) for the rest.
DEFAULT_K = 512
DEFAULT_THRESHOLD = 30.0
_ABSORB = 20.0
#: rows and columns of the coarse subsample problem.
COARSE_SIZE = 3000
#: rows (and columns) of a tile in a symmetric problem's half pass.
TILE = 2048
#: a symmetric support leaves out at most this many ``tol`` of the mass (estimated on a row sample).
MASS_TARGET = 0.05
#: the coarse plan's missing mass decides: above this many ``tol`` the truncation is skipped (the
#: plan is diffuse: MNIST/FashionMNIST 0.15); above ``tol`` one truncated solve only warm-starts the
#: full passes (MNIST/USPS 1e-3: 9 passes from its potentials instead of 20 from the coarse ones).
DIFFUSE_FACTOR = 100.0


def _chunks(total: int, size: int = 1 << 22):
    for c0 in range(0, total, size):
        yield c0, min(total, c0 + size)


class _Entries:
    """Kept entries ``(row, col, cost)`` written into buffers allocated once (int32, int32, the
    cost's dtype): appending the pieces of every tile to Python lists and concatenating them at
    the end interleaves thousands of long-lived pieces with the tiles' temporaries, and the
    allocator could not return the holes (the MNIST 60k self term held 5.4 GB for a 0.5 GB
    support). ``capacity`` is a bound the caller guarantees; untouched pages cost no memory."""

    def __init__(self, capacity: int, dtype: torch.dtype, device):
        self.rows = torch.empty(capacity, dtype=torch.int32, device=device)
        self.cols = torch.empty(capacity, dtype=torch.int32, device=device)
        self.vals = torch.empty(capacity, dtype=dtype, device=device)
        self.size = 0

    def append(self, r: Tensor, c: Tensor, v: Tensor) -> None:
        k0, k1 = self.size, self.size + r.numel()
        self.rows[k0:k1], self.cols[k0:k1], self.vals[k0:k1] = r, c, v
        self.size = k1

    def view(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.rows[:self.size], self.cols[:self.size], self.vals[:self.size]

    def keep(self, mask: Tensor) -> None:
        """Keep the entries where ``mask`` (over the current ones) is true, in order, in place."""
        for buf in (self.rows, self.cols, self.vals):
            kept = buf[:self.size][mask]
            buf[:kept.numel()] = kept
            del kept
        self.size = int(mask.sum())


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
        self.perm = None if symmetric else torch.argsort(cols, stable=True).to(torch.int32)
        self.ccol = torch.zeros(m + 1, dtype=torch.int32, device=rows.device)
        self.ccol[1:] = torch.bincount(cols, minlength=m).cumsum(0)
        self.rows_t = None if symmetric else rows[self.perm]

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    def kernels(self, f: Tensor, g: Tensor, eps: float):
        """``K_ij = exp((f_i + g_j - C_ij) / eps)`` on the support, each row's maximum shifted to 1
        (the shift moved into ``f``), as CSR matrices ``K`` and ``K^T``; returns ``K, K^T, f, u0``."""
        # chunks of entries: no temporary of the support's size besides K itself
        T = torch.empty_like(self.vals)
        for c0, c1 in _chunks(self.nnz):
            r, c = self.rows[c0:c1], self.cols[c0:c1]
            torch.sub(f[r] + g[c], self.vals[c0:c1], out=T[c0:c1]).div_(eps)
        s = torch.segment_reduce(T, "max", lengths=self.crow.diff(), unsafe=True)  # rows sorted (CSR)
        s = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
        if self.symmetric:  # half the shift on each side keeps K symmetric
            s = 0.5 * s
        for c0, c1 in _chunks(self.nnz):
            blk = T[c0:c1].sub_(s[self.rows[c0:c1]])
            if self.symmetric:
                blk.sub_(s[self.cols[c0:c1]])
            exp_(blk)
        K = T
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's sparse CSR beta notice
            Kr = torch.sparse_csr_tensor(self.crow, self.cols, K, (self.n, self.m))
            Kc = Kr if self.symmetric else torch.sparse_csr_tensor(self.ccol, self.rows_t, K[self.perm],
                                                                   (self.m, self.n))
        return Kr, Kc, f - eps * s, s.clamp(-_ABSORB, _ABSORB).exp()


def coarse_potentials(cost: PointCloudCost, a: Tensor, b: Tensor, eps: float, symmetric: bool,
                      block_elements: int, size: int = COARSE_SIZE, seed: int = 0, budget: int = 0):
    """Potentials of the problem on ``size`` random rows and columns (weights renormalised), extended
    to every row and column by a c-transform. Returns ``f, g, missing``: ``missing`` is the mass of
    the coarse plan outside each row's ``max(budget * size / m, budget / 4)`` largest entries (the
    share of columns a support of ``budget`` entries per row would keep; 0 when ``budget`` is 0)."""
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
        # the budget's share of the coarse columns, but never under a quarter of the budget: a
        # concentrated plan (a self term) keeps its few heavy entries at any size
        keep = max(1, int(budget * len(cj) / cost.m), budget // 4)
        if keep < len(cj):
            P = (r.f.unsqueeze(1) + r.g.unsqueeze(0) - sub.dense()).div_(eps).add_(la.unsqueeze(1)).add_(lb)
            exp_(P)
            missing = float(P.sum() - P.topk(keep, dim=1).values.sum())
            del P
    # g_j = -eps LSE_{i in S} (f_i / eps + log a_i - C_ij / eps), over all columns j
    g = -eps * _Engine(cost.subset(ri, None), "online", 0, block_elements).col_lse(r.f / eps + la, eps)
    if symmetric:
        f = _symmetric_extension(g, r.f / eps + la, ri, a, eps)
        return f, f, missing
    f = -eps * _Engine(cost.subset(None, cj), "online", 0, block_elements).row_lse(r.g / eps + lb, eps)
    return f, g, missing


def _symmetric_extension(g: Tensor, own: Tensor, ri: Tensor, a: Tensor, eps: float) -> Tensor:
    """Potentials of a symmetric problem from its subsample's: the fixed point ``exp(-f_j / eps) =
    a_j exp(f_j / eps) + A_j`` of the full problem with the point's own term kept exact (``C_jj =
    0``) and the others, ``A_j = sum_{i != j} a_i exp((f_i - C_ij) / eps)``, estimated on the
    subsample (``-eps log A_j`` is its c-transform ``g``, less the point's own term for subsample
    points). The plain c-transform leaves out the own term, which dominates at a small epsilon:
    points far from the subsample got potentials 10-35 epsilons too large (MNIST 10k self term,
    3,000 subsample), and a support selected with them missed the mass."""
    logA = (-g / eps).double()
    la = logA[ri]  # own: log of the subsample point's own term in that sum, f_i / eps + log a_i
    logA[ri] = la + torch.log1p(-torch.exp(own.double() - la).clamp(max=1.0 - 1e-12))
    A, w = logA.exp(), a.double()
    # a_j z^2 + A_j z - 1 = 0 with z = exp(f_j / eps), solved without cancellation
    z = 2.0 / (A + (A * A + 4.0 * w).sqrt())
    return (eps * z.log()).to(g.dtype)


def _scores(cost: PointCloudCost, fac, f: Tensor, g: Tensor, eps: float, i0: int, i1: int, j0: int, j1: int) -> Tensor:
    """The scores ``(f_i + g_j - C_ij) / eps`` of a tile: one matrix product of the cost's
    :meth:`~otdata.ot.costs.PointCloudCost.score_factors` when it has them."""
    if fac is not None:
        return torch.mm(fac[0][i0:i1], fac[1][j0:j1].T)
    Ct = cost.tile(i0, i1, j0, j1)
    return torch.sub(g[j0:j1].unsqueeze(0), Ct).add_(f[i0:i1].unsqueeze(1)).div_(eps)


def _start_threshold(cost: PointCloudCost, f: Tensor, g: Tensor, eps: float, per_row: int, target: float = 0.0,
                     b: Tensor | None = None, rows: int = 256, seed: int = 1) -> float:
    """A first threshold from ``rows`` random rows: the lowest score that keeps about ``per_row``
    entries per row (the memory budget), raised to the highest one whose left-out mass ``sum_j b_j
    exp(s_ij)`` per row stays below ``target`` on average (``0``: no such raise)."""
    gen = torch.Generator().manual_seed(seed)
    ri = torch.randperm(cost.n, generator=gen)[:rows].to(f.device)
    with torch.no_grad():
        S = torch.sub(g.unsqueeze(0), cost.subset(ri, None).block(0, len(ri))).add_(f[ri].unsqueeze(1)).div_(eps)
        kth = min(S.numel(), max(1, per_row * len(ri)))
        t = float(S.flatten().topk(kth).values[-1])
        if target > 0:
            w = (torch.full((cost.m,), 1.0 / cost.m, dtype=S.dtype, device=S.device) if b is None else b)
            vals, order = S.flatten().sort()
            mass = (vals.double().exp() * w.double().repeat(len(ri))[order]).cumsum(0) / len(ri)
            below = int(torch.searchsorted(mass, torch.tensor([target], dtype=mass.dtype, device=mass.device)))
            if below > 0:
                t = max(t, float(vals[below - 1]))
        return t


def select_support(cost: PointCloudCost, f: Tensor, g: Tensor, eps: float, k: int, threshold: float,
                   block_elements: int, symmetric: bool = False, b: Tensor | None = None, target: float = 0.0):
    """One pass over the cost keeping the entries that can carry mass; returns the support and, per
    row, ``log X_i`` with ``X_i = sum_{j not kept} b_j exp(s_ij)`` the weighted mass it leaves out
    for the scores ``s_ij = (f_i + g_j - C_ij) / eps`` of these potentials (``b``: the column
    weights, uniform by default).

    Non-symmetric: each row keeps its ``k`` largest scores and every score above ``-threshold``,
    at most ``2 k`` (then the ``2 k`` largest). Symmetric (``f = g``, ``C = C^T``):
    :func:`select_symmetric`."""
    if b is None:
        b = torch.full((cost.m,), 1.0 / cost.m, dtype=f.dtype, device=f.device)
    if symmetric:
        return select_symmetric(cost, f, eps, k, threshold, b=b, target=target)
    k = min(k, cost.m)
    kept = _Entries(cost.n * min(2 * k, cost.m), f.dtype, f.device)  # at most 2 k per row
    X = torch.zeros(cost.n, dtype=torch.float64, device=f.device)
    fac = cost.score_factors(f, g, 1.0 / eps)
    step = max(1, block_elements // max(cost.m, 1))
    with torch.no_grad():
        for i0 in range(0, cost.n, step):
            i1 = min(cost.n, i0 + step)
            S = _scores(cost, fac, f, g, eps, i0, i1, 0, cost.m)
            keep = S > -threshold
            over = keep.sum(1) > 2 * k
            if bool(over.any()):  # loose potentials: bound the memory (those rows keep their 2k best)
                top = S[over].topk(min(2 * k, cost.m), dim=1)
                keep[over] = torch.zeros_like(keep[over]).scatter_(1, top.indices, True)
            keep.scatter_(1, S.topk(k, dim=1).indices, True)
            r, c = keep.nonzero(as_tuple=True)
            kept.append(r + i0, c, f[r + i0] + g[c] - eps * S[r, c])  # C_ij from its score
            X[i0:i1] = torch.mv(exp_(S.masked_fill_(keep, -math.inf)), b).double()
    return SparseSupport(*kept.view(), cost.n, cost.m), X.log()  # unused capacity: never touched


def select_symmetric(cost: PointCloudCost, f: Tensor, eps: float, k: int, threshold: float, tile: int = TILE,
                     b: Tensor | None = None, target: float = 0.0):
    """Half pass over a symmetric cost: tiles ``(I, J)`` with ``J >= I`` only (the diagonal tiles'
    upper triangle), each entry kept on both sides, so the support is exactly symmetric (its values
    too). Keeps every score above a global threshold ``t`` and the diagonal. ``t`` starts at
    ``-threshold`` or higher: where a sample of rows expects ``1.5 k`` entries per row, or higher
    still where the sample leaves out less than ``target`` of the mass per row; when the kept
    entries still exceed ``k n`` (upper half; ``2 k`` per row on average), ``t`` is raised to halve
    them and the entries below it are dropped (their mass counted as left out). Returns the support
    and ``log X_i`` (:func:`select_support`)."""
    n = cost.n
    w = torch.full((n,), 1.0 / n, dtype=f.dtype, device=f.device) if b is None else b
    budget = max(k * n, n)
    t = max(-threshold, _start_threshold(cost, f, f, eps, (3 * k) // 2, target, w))
    X = torch.zeros(n, dtype=torch.float64, device=f.device)
    kept = _Entries(budget + tile * tile, f.dtype, f.device)  # compacted to <= budget after every tile
    fac = cost.score_factors(f, f, 1.0 / eps)
    with torch.no_grad():
        for i0 in range(0, n, tile):
            i1 = min(n, i0 + tile)
            for j0 in range(i0, n, tile):
                j1 = min(n, j0 + tile)
                diag = j0 == i0
                S = _scores(cost, fac, f, f, eps, i0, i1, j0, j1)
                if diag:  # the upper triangle's values on both sides: exactly symmetric
                    S = torch.triu(S) + torch.triu(S, 1).T
                keep = S > t
                if diag:
                    keep.diagonal().fill_(True)
                    r, c = keep.triu().nonzero(as_tuple=True)
                else:
                    r, c = keep.nonzero(as_tuple=True)
                kept.append(r + i0, c + j0, f[r + i0] + f[c + j0] - eps * S[r, c])  # C_ij from its score
                E = exp_(S.masked_fill_(keep, -math.inf))
                X[i0:i1] += torch.mv(E, w[j0:j1]).double()
                if not diag:
                    X[j0:j1] += torch.mv(E.T, w[i0:i1]).double()
                del S, E, keep, r, c
                if kept.size > budget:  # raise t to the median score of the kept entries
                    R, Cc, V = kept.view()
                    sc = (f[R] + f[Cc] - V).div_(eps)
                    t = max(t, float(sc.median()))
                    keep = (sc > t) | (R == Cc)
                    drop = ~keep
                    ds, dr, dc = sc[drop].double().exp(), R[drop].long(), Cc[drop].long()
                    X.index_add_(0, dr, ds * w[dc].double())
                    X.index_add_(0, dc, ds * w[dr].double())
                    del R, Cc, V, sc, drop, ds, dr, dc
                    kept.keep(keep)
                    del keep
        r, c, v = kept.view()
        off = r != c
        rows, cols, vals = torch.cat([r, c[off]]), torch.cat([c, r[off]]), torch.cat([v, v[off]])
        del r, c, v, off, kept
        # rows in order (CSR); one gather at a time keeps the peak near the support's own size
        order = torch.sort(rows, stable=True).indices
        rows = rows[order]
        cols = cols[order]
        vals = vals[order]
        del order
    return SparseSupport(rows, cols, vals, n, n, symmetric=True), X.log()


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
        for c0, c1 in _chunks(sup.nnz):  # float64 in chunks of entries
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
