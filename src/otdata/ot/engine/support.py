"""The truncated support of the sparse backend: which entries of a cost can carry mass.

For potentials ``(f, g)`` an entry's score is ``s_ij = (f_i + g_j - C_ij) / eps``; the plan puts
mass ``a_i b_j exp(s_ij)`` there. One pass over the cost (blocks of rows, or a symmetric problem's
upper-triangle tiles) keeps the entries whose score can matter (:func:`select_support`,
:func:`select_symmetric`) into a :class:`SparseSupport`, 12 bytes each, and records per row the
weighted mass it leaves out, which the certificate of :mod:`.sparse` bounds.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from .._exp import exp_
from ..costs import PointCloudCost
from .scaling import finite_or_zero, shift_scaling

#: entries kept per row, and the threshold (in epsilons below the potentials' bound) for the rest.
DEFAULT_K = 512
DEFAULT_THRESHOLD = 30.0
#: rows (and columns) of a tile in a symmetric problem's half pass.
TILE = 2048


def chunks(total: int, size: int = 1 << 22):
    """``(c0, c1)`` ranges of ``size`` entries covering ``0..total``."""
    for c0 in range(0, total, size):
        yield c0, min(total, c0 + size)


class _Entries:
    """Kept entries ``(row, col, cost)`` written into buffers allocated once (int32, int32, the
    cost's dtype): appending the pieces of every tile to Python lists and concatenating them at
    the end interleaves thousands of long-lived pieces with the tiles' temporaries, and the
    allocator cannot return the holes (the peak grows to many times the support's size).
    ``capacity`` is a bound the caller guarantees; untouched pages cost no memory."""

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
        for c0, c1 in chunks(self.nnz):
            r, c = self.rows[c0:c1], self.cols[c0:c1]
            torch.sub(f[r] + g[c], self.vals[c0:c1], out=T[c0:c1]).div_(eps)
        s = finite_or_zero(torch.segment_reduce(T, "max", lengths=self.crow.diff(), unsafe=True))  # CSR rows
        if self.symmetric:  # half the shift on each side keeps K symmetric
            s = 0.5 * s
        for c0, c1 in chunks(self.nnz):
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
        return Kr, Kc, f - eps * s, shift_scaling(s)


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
