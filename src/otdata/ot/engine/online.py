"""The online backend: log-domain Sinkhorn passes over cost blocks recomputed on the fly.

Memory stays ``O(n + m)`` besides one block of rows: :class:`RowBlocks` walks the cost (a stored
matrix, or blocks recomputed from a :class:`~otdata.ot.costs.PointCloudCost`) and computes the
c-transforms ``T(g)_i = -eps LSE_j (g_j / eps + log b_j - C_ij / eps)`` block by block.
:func:`solve_online` iterates them; it is also where a dense or sparse solve that did not converge
is continued (the log domain cannot underflow). Big problems log each pass with an estimate of the
time left.
"""

from __future__ import annotations

import logging
import math
import time

import torch
from torch import Tensor

from .._exp import exp_
from ..costs import Cost, PointCloudCost
from .anderson import DEPTH, Anderson
from .scaling import finite_or_zero

#: rows per block of a full pass computed from score factors (one product per block).
FUSED_ROWS = 512

#: problems with at least this many cost entries log their full passes (progress and time left).
PROGRESS_ELEMENTS = 1 << 28

log = logging.getLogger(__name__)


class RowBlocks:
    """Row-block iteration over a cost: the stored matrix ``C`` (``store=True``: built once, in
    blocks) or blocks recomputed from ``cost`` on every pass; ``block_elements`` per block."""

    def __init__(self, cost: Cost, block_elements: int, store: bool = False):
        self.cost = cost
        self.step = max(1, block_elements // max(cost.m, 1))
        self.C = cost.dense(self.step) if store else None

    def blocks(self, values: bool = True):
        """Row blocks ``(i0, i1, C[i0:i1])`` (``values=False``: ``None`` for the block)."""
        n = self.cost.n
        for i0 in range(0, n, self.step):
            i1 = min(n, i0 + self.step)
            if not values:
                yield i0, i1, None
            else:
                yield i0, i1, (self.C[i0:i1] if self.C is not None else self.cost.block(i0, i1))

    # f_i = -eps * LSE_j (h_j - C_ij / eps),  h = g / eps + log b
    def row_lse(self, h: Tensor, eps: float) -> Tensor:
        out = torch.empty(self.cost.n, dtype=h.dtype, device=h.device)
        for i0, i1, Cb in self.blocks():
            T = torch.sub(h.unsqueeze(0), Cb, alpha=1.0 / eps)
            mx = finite_or_zero(T.amax(1, keepdim=True))
            s = exp_(T.sub_(mx)).sum(1)
            out[i0:i1] = mx.squeeze(1) + s.log()
        return out

    # g_j = -eps * LSE_i (k_i - C_ij / eps),  k = f / eps + log a
    def col_lse(self, k: Tensor, eps: float) -> Tensor:
        parts = []
        for i0, i1, Cb in self.blocks():
            T = torch.sub(k[i0:i1].unsqueeze(1), Cb, alpha=1.0 / eps)
            mx = finite_or_zero(T.amax(0, keepdim=True))
            s = exp_(T.sub_(mx)).sum(0)
            parts.append(mx.squeeze(0) + s.log())
        if len(parts) == 1:
            return parts[0]
        return torch.logsumexp(torch.stack(parts), 0)

    def fused_pass(self, f: Tensor, g: Tensor, a: Tensor, loga: Tensor, logb: Tensor, eps: float,
                   omega: float = 1.0, want_tc: bool = False):
        """One Sinkhorn iteration in **one** pass over the cost (one matrix product per block): the
        row update ``f' = (1 - omega) f + omega T(g)`` of each block, then, with that block's ``f'``,
        its share of the column sums. The plan of ``(f', g)`` is ``pi_ij = w_i E_ij`` with ``E_ij =
        exp(L_ij - max_j L_ij)``, ``L_ij = log b_j + (g_j - C_ij) / eps`` and ``w_i = a_i
        exp((f'_i - T(g)_i) / eps) / sum_j E_ij`` (at most ``a_i`` when ``omega = 1``), so its column
        sums are one matrix-vector product per block and both of its marginals are exact.

        Returns ``f', row_err, col_err, tc, g_next``: the L1 errors of both marginals of the plan
        of ``(f', g)``, its ``<pi, C>`` (when ``want_tc``, else NaN) and the next column update
        ``(1 - omega) g + omega T(f')``."""
        h = g / eps + logb
        fn = torch.empty_like(f)
        col = torch.zeros(self.cost.m, dtype=torch.float64, device=f.device)
        tc, row_err = 0.0, 0.0
        G = eps * h  # C_ij = G_j - eps L_ij
        fac = self.cost.score_factors(None, G, 1.0 / eps) if self.C is None and isinstance(
            self.cost, PointCloudCost) else None
        # with the factors, bigger row blocks: fewer products, each re-reading (packing) all of B
        blocks = self.blocks() if fac is None else (
            (i0, min(self.cost.n, i0 + FUSED_ROWS), None) for i0 in range(0, self.cost.n, FUSED_ROWS))
        for i0, i1, Cb in blocks:
            # L_ij = h_j - C_ij / eps: from the cost block, or one product of the score factors
            L = torch.sub(h.unsqueeze(0), Cb, alpha=1.0 / eps) if fac is None else torch.mm(fac[0][i0:i1], fac[1].T)
            L0 = L.clone() if want_tc and fac is not None else None
            mx = finite_or_zero(L.amax(1, keepdim=True))
            E = exp_(L.sub_(mx))
            s = E.sum(1)
            Tg = -eps * (mx.squeeze(1) + s.log())
            if omega == 1.0:
                fb, w = Tg, a[i0:i1] / s
            else:
                fb = (1.0 - omega) * f[i0:i1] + omega * Tg
                r = ((fb - Tg) / eps).exp()  # row sums of the plan of (f', g), over a_i
                row_err += float((a[i0:i1] * (r - 1).abs()).sum())
                w = a[i0:i1] * r / s
            fn[i0:i1] = fb
            col += torch.mv(E.T, w).double()
            if want_tc and fac is None:
                tc += float(E.mul_(Cb).sum(1, dtype=torch.float64) @ w.double())
            elif want_tc:  # sum_j E_ij C_ij = E_i . G - eps E_i . L_i
                ec = torch.mv(E, G).double() - eps * torch.einsum("ij,ij->i", E, L0).double()
                tc += float(ec @ w.double())
        bd = logb.exp().double()
        col_err = float((col - bd).abs().sum())
        g_new = g - eps * (col.clamp_min(1e-300).log() - bd.log()).to(g.dtype)
        g_next = g_new if omega == 1.0 else (1.0 - omega) * g + omega * g_new
        return fn, row_err, col_err, (tc if want_tc else math.nan), g_next


def solve_online(engine: RowBlocks, f, g, a, b, loga, logb, schedule, max_iter, tol, symmetric, warm,
                 accelerate=True, want_tc=False):
    """Log-domain iterations with recomputed cost blocks: one (averaged) update per epsilon
    level, then iterations at the target until the L1 marginal error is below ``tol``.

    One pass over the cost per iteration. Non-symmetric: :meth:`RowBlocks.fused_pass` (row and
    column updates from one matrix product per block), Anderson-accelerated at the target
    (``accelerate``; the memory is dropped when the error grows); it stops on a pair ``(f, g)``
    whose two marginal errors were both measured (``f = T(g)``: rows exact), and returns its ``<pi,
    C>`` when ``want_tc``. Symmetric: the averaged update ``f <- (f + T(f)) / 2``; it stops on the
    ``f`` whose error was measured. Returns ``f, g, iterations, error, converged, tc`` (tc: NaN
    when not computed). Big problems log each pass with an estimate of the time left."""
    it, err, converged, tc = 0, float("inf"), False, math.nan
    total = len(schedule) - 1 + max_iter
    big = engine.cost.n * engine.cost.m >= PROGRESS_ELEMENTS
    t0, errs = time.perf_counter(), []
    acc = Anderson(DEPTH, b) if accelerate and not symmetric else None
    while it < total:
        e = schedule[min(it, len(schedule) - 1)]
        at_target = it >= len(schedule) - 1
        if symmetric:
            Tf = -e * engine.row_lse(f / e + loga, e)
            if at_target:
                err = float((a * ((f - Tf) / e).exp().sub(1).abs()).sum())
                if err < tol:
                    it += 1
                    converged = True
                    break
            f = 0.5 * (f + Tf) if it > 0 or warm else Tf
            g = f
        else:
            fn, row_err, col_err, tcp, g_next = engine.fused_pass(f, g, a, loga, logb, e, 1.0, want_tc and at_target)
            if at_target:
                err = max(row_err, col_err)
                if err < tol:  # (fn, g) is the measured pair
                    f, tc, converged = fn, tcp, True
                    it += 1
                    break
                if acc is not None:
                    g_next = acc.update(g, g_next, err)
            f, g = fn, g_next
        it += 1
        if big and at_target:
            errs.append(err)
            log_progress(it, err, tol, errs, time.perf_counter() - t0)
    if symmetric:
        g = f
    return f, g, it, err, converged, tc


def log_progress(it: int, err: float, tol: float, errs: list, seconds: float) -> None:
    """One line per full pass of a big problem: the marginal error and, from its recent geometric
    rate of decrease, the passes and seconds left."""
    eta = ""
    if len(errs) >= 3 and errs[-1] < errs[-3]:
        rate = (errs[-1] / errs[-3]) ** 0.5
        left = math.log(tol / errs[-1]) / math.log(rate)
        eta = f", about {left:.0f} passes ({left * seconds / it:.0f} s) left"
    log.info("full pass %d: marginal error %.2e (tol %.0e), %.1f s per pass%s", it, err, tol, seconds / it, eta)
