"""Many small entropic OT problems solved together: :func:`batched_sinkhorn`.

The ``"exact"`` label distance of OTDD needs ``W_p^p`` between every pair of classes, ``C1 x C2``
problems of a few hundred points each. One POT call per pair spends its time in per-call overhead
and in the network simplex' superlinear cost; here the pairs are stacked into one padded
``(B, n, m)`` batch and iterated together with batched matrix-vector products at a small epsilon
(relative to each problem's mean cost).

Stabilisation is that of the dense backend (:mod:`otdata.ot.engine.dense`), with the shift,
absorb and over-relaxation fallback rules of :mod:`otdata.ot.engine.scaling`: each problem anneals
epsilon from its largest cost, the kernel ``exp((f + g - C) / eps)`` is rebuilt from the cost at
every level and whenever the scalings grow (they are absorbed into the potentials first), never
obtained by powering an earlier kernel. Padding carries zero weight and an infinite cost.

**Certified stopping** (``rtol``). Instead of iterating until the marginals are met to a
tolerance, each problem gets a two-sided bound on its *exact* (unregularised) OT value and stops
as soon as the bounds are within ``rtol`` of each other:

* upper bound ``U``: the cost of a feasible plan, the current Sinkhorn plan rounded onto the
  transport polytope (Altschuler, Weed & Rigollet 2017, Alg. 2: scale rows, then columns, down to
  their marginals, and add the rank-one correction of what is missing);
* lower bound ``L``: the dual value of the hard c-transforms of the current potential,
  ``g = f^c``, ``f' = g^c``, ``L = <a, f'> + <b, g>`` (weak duality: any c-concave pair bounds
  exact OT from below).

``U - L <= rtol * L`` then certifies that the reported ``U`` is within ``rtol`` of exact OT, for
this problem, whatever epsilon, iteration count or marginal error got it there. Certified problems
leave the batch, so the hard ones do not keep the easy ones iterating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._exp import exp_
from ._threads import SINGLE_THREAD_ELEMENTS, single_thread
from .engine.scaling import OverRelaxation, absorb_due, shift_scaling


@dataclass
class BatchedResult:
    """Output of :func:`batched_sinkhorn`: per problem ``transport_cost`` ``<pi, C>`` (``(B,)``,
    differentiable w.r.t. ``C`` by the envelope theorem: its gradient is the plan), potentials
    ``f`` ``(B, n)`` and ``g`` ``(B, m)``, absolute ``epsilon`` ``(B,)``; ``n_iter`` (all levels, the
    batch's iterations), ``marginal_error`` (largest L1 marginal violation of the Sinkhorn iterate
    when each problem stopped) and ``converged`` (every problem met its stopping rule).

    With ``rtol`` (certified stopping), ``transport_cost`` is the cost of a *feasible* plan (an
    upper bound on exact OT), ``lower`` a lower bound on exact OT, and ``gap`` the largest
    ``(transport_cost - lower) / lower`` of the batch; without it both are ``None``."""

    transport_cost: Tensor
    f: Tensor
    g: Tensor
    epsilon: Tensor
    n_iter: int
    marginal_error: float
    converged: bool
    lower: Tensor | None = None
    gap: float | None = None


def _build(Cm: Tensor, f: Tensor, g: Tensor, e: Tensor, ma: Tensor):
    """``K = exp((f + g - C) / e)`` with each row's maximum shifted to 1 and the shift moved into
    ``f``; returns ``K, f, u0`` (``u0 = exp(shift)`` keeps the plan unchanged)."""
    T = (f.unsqueeze(2) + g.unsqueeze(1) - Cm).div_(e[:, None, None])
    s = T.amax(2)
    s = torch.where(ma & torch.isfinite(s), s, torch.zeros_like(s))
    K = exp_(T.sub_(s.unsqueeze(2)))
    return K, f - e[:, None] * s, shift_scaling(s)


def _vm(x: Tensor, K: Tensor) -> Tensor:
    return torch.bmm(x.unsqueeze(1), K).squeeze(1)


def _plan_cost(K: Tensor, Cz: Tensor, al: Tensor, be: Tensor) -> Tensor:
    """``sum_ij al_i K_ij C_ij be_j`` per problem."""
    return (be * _vm(al, K * Cz)).sum(1)


def _certificate(K, KT, Cm, Cz, a, b, au, bv, F, ma, mb):
    """Bounds on exact OT from the current iterate ``P = diag(a u) K diag(b v)`` and potential
    ``F`` (see the module docstring). Returns ``U, L``, the cost ``M`` of the scaled-down part of
    the rounded plan (``U - M`` is what the marginal error costs) and the rounded plan in the form
    ``diag(al) K diag(be) + er ec^T`` as ``(al, be, er, ec)``. ``KT``: ``K`` transposed, contiguous
    (a row vector times a matrix is the fast product on CPU)."""
    tiny = torch.finfo(K.dtype).tiny
    r = au * _vm(bv, KT)                                  # row sums of P
    x = torch.where(r > a, a / r.clamp_min(tiny), torch.ones_like(r))
    al = au * x
    c = bv * _vm(al, K)                                   # column sums after the row scaling
    y = torch.where(c > b, b / c.clamp_min(tiny), torch.ones_like(c))
    be = bv * y
    er = (a - al * _vm(be, KT)).clamp_min(0.0)            # what rows and columns still miss
    ec = (b - c * y).clamp_min(0.0)
    ec = ec / ec.sum(1, keepdim=True).clamp_min(1e-30)    # er ec^T carries exactly the missing mass
    M = _plan_cost(K, Cz, al, be)
    U = M + (ec * _vm(er, Cz)).sum(1)
    gc = (Cm - F.unsqueeze(2)).amin(1)                    # g = F^c: min_i C_ij - F_i
    gc = torch.where(mb, gc, torch.zeros_like(gc))
    fcc = (Cm - gc.unsqueeze(1)).amin(2)                  # f' = g^c
    fcc = torch.where(ma, fcc, torch.zeros_like(fcc))
    L = (a * fcc).sum(1) + (b * gc).sum(1)
    return U, L, M, (al, be, er, ec)


def batched_sinkhorn(C: Tensor, a: Tensor, b: Tensor, epsilon: Tensor, *, tol: float = 1e-4,
                     max_iter: int = 3000, scaling: float = 0.5, overrelax: float = 1.8,
                     rtol: float | None = None, check_every: int = 5) -> BatchedResult:
    """Entropic OT for a batch of problems ``(a[k], b[k], C[k])``.

    ``C``: ``(B, n, m)`` costs (may carry autograd history; entries where a weight is zero are
    ignored); ``a`` ``(B, n)`` and ``b`` ``(B, m)``: non-negative weights summing to one per
    problem, zero on padding; ``epsilon``: ``(B,)`` absolute regularisation per problem. Each
    problem anneals from its largest cost by ``scaling`` per level (one iteration per level, as
    GeomLoss does), then iterates at its epsilon, over-relaxed by ``overrelax`` (falling back to
    plain updates if the error grows), until it meets its stopping rule or ``max_iter``
    iterations ran at that epsilon.

    * ``rtol=None``: its L1 marginal error is below ``tol``; ``transport_cost`` is ``<pi, C>`` of the
      entropic plan;
    * ``rtol``: its certified gap to exact OT is at most ``rtol`` (checked every ``check_every``
      iterations; module docstring); ``transport_cost`` is the cost of the rounded, feasible plan,
      ``lower`` a lower bound, both on *exact* OT. A problem whose gap shrank by less than 20 %
      since the previous check has reached the entropic bias of its epsilon: its epsilon is
      halved (the returned ``epsilon`` is the last one used).

    A problem that met its rule leaves the batch.
    """
    if C.ndim != 3 or a.shape != C.shape[:2] or b.shape != (C.shape[0], C.shape[2]):
        raise ValueError(f"shapes: C (B, n, m), a (B, n), b (B, m); got {tuple(C.shape)}, "
                         f"{tuple(a.shape)}, {tuple(b.shape)}")
    if rtol is not None and not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    Bn, n, m = C.shape
    dt, dev = C.dtype, C.device
    with torch.no_grad(), single_thread(C.numel() <= SINGLE_THREAD_ELEMENTS):
        a, b = a.detach().to(dt), b.detach().to(dt)
        eps_all = torch.as_tensor(epsilon, dtype=dt, device=dev).expand(Bn).clone()
        ma, mb = a > 0, b > 0
        mask = ma.unsqueeze(2) & mb.unsqueeze(1)
        Cm = C.detach().masked_fill(~mask, math.inf)
        Cz = C.detach().masked_fill(~mask, 0.0)
        cmax = Cz.amax((1, 2)).clamp_min(0)
        levels = max(0, math.ceil(math.log(max(float((cmax / eps_all).max()), 1.0)) / -math.log(scaling)))
        tiny = torch.finfo(dt).tiny
        # per problem, filled in when it stops: potentials, value, bounds, the plan (for gradients)
        out_f, out_g = a.new_zeros(a.shape), b.new_zeros(b.shape)
        out_u = a.new_full((Bn,), math.nan)
        out_l = a.new_full((Bn,), math.nan)
        out_err, out_eps = a.new_zeros(Bn), eps_all.clone()
        out_ok = torch.zeros(Bn, dtype=torch.bool, device=dev)
        out_phi, out_psi = a.new_zeros(a.shape), b.new_zeros(b.shape)
        out_er, out_ec = a.new_zeros(a.shape), b.new_zeros(b.shape)

        idx = torch.arange(Bn, device=dev)   # the problems still iterating, and their state:
        eps = eps_all.clone()                # (halved where the gap stalls)
        prev = a.new_full((Bn,), math.inf)   # certified gap at the previous check
        halved = torch.zeros(Bn, dtype=torch.long, device=dev)
        f, g = a.new_zeros(a.shape), b.new_zeros(b.shape)
        n_iter, it_final, k, relax = 0, 0, 0, None
        while idx.numel():
            last = k >= levels
            e = eps if last else torch.maximum(cmax * scaling**k, eps)
            if last and relax is None:
                relax = OverRelaxation(overrelax)
            omega = relax.omega if last else 1.0
            K, f, u = _build(Cm, f, g, e, ma)
            KT = K.mT.contiguous()
            v = torch.ones_like(g)
            while True:
                un = _vm(b * v, KT).clamp_min_(tiny).reciprocal_()
                un = torch.where(ma, un, torch.ones_like(un))
                u = un if omega == 1.0 else u.pow(1.0 - omega) * un.pow(omega)
                c = _vm(a * u, K).clamp_min_(tiny)
                perr = (b * (v * c - 1).abs()).sum(1)     # column marginal error before the v update
                vn = torch.where(mb, c.reciprocal(), torch.ones_like(c))
                v = vn if omega == 1.0 else v.pow(1.0 - omega) * vn.pow(omega)
                n_iter += 1
                if not last:
                    break
                it_final += 1
                relax.observe(float(perr.max()))
                omega = relax.omega
                out_of_budget = it_final >= max_iter
                if rtol is None:
                    stop, slow = (perr < tol) | out_of_budget, None
                elif (it_final % check_every == 0 and float(perr.min()) < 10 * rtol) or out_of_budget:
                    # (while every marginal error is above 10 rtol, no gap is below rtol in practice)
                    F = f + e[:, None] * u.log()
                    U, L, M, (al, be, er, ec) = _certificate(K, KT, Cm, Cz, a, b, a * u, b * v, F, ma, mb)
                    rel = (U - L) / L.abs().clamp_min(tiny)
                    ok = rel <= rtol
                    stop = ok | out_of_budget
                    # the gap hardly shrinks and most of it is not the marginal error's: the entropic
                    # bias of this epsilon exceeds rtol; halve it (three times at most)
                    slow = ~stop & (rel > 0.8 * prev) & (M - L > 0.6 * rtol * L.abs()) & (halved < 3)
                    prev = rel
                else:
                    stop = slow = None
                if stop is not None and bool(stop.any()):
                    s = stop.nonzero().squeeze(1)
                    j = idx[s]
                    es = e[s, None]
                    out_f[j] = (f + e[:, None] * u.log())[s]
                    out_g[j] = (g + e[:, None] * v.log())[s]
                    out_err[j], out_eps[j] = perr[s], e[s]
                    if rtol is None:
                        al, be = a * u, b * v
                        out_u[j] = _plan_cost(K[s], Cz[s], al[s], be[s])
                        out_ok[j] = perr[s] < tol
                        er, ec = torch.zeros_like(a), torch.zeros_like(b)
                    else:
                        out_u[j], out_l[j], out_ok[j] = U[s], L[s], ok[s]
                    out_phi[j] = f[s] + es * al[s].log()
                    out_psi[j] = g[s] + es * be[s].log()
                    out_er[j], out_ec[j] = er[s], ec[s]
                    keep = (~stop).nonzero().squeeze(1)
                    idx = idx[keep]
                    if not idx.numel():
                        break
                    K, KT, Cm, Cz, a, b, ma, mb = K[keep], KT[keep], Cm[keep], Cz[keep], a[keep], b[keep], ma[keep], mb[keep]
                    eps, e, cmax, halved = eps[keep], e[keep], cmax[keep], halved[keep]
                    f, g, u, v = f[keep], g[keep], u[keep], v[keep]
                    prev = prev[keep]
                    slow = None if slow is None else slow[keep]
                if slow is not None and bool(slow.any()):
                    eps = torch.where(slow, eps / 2, eps)
                    halved = halved + slow.long()
                    prev = torch.where(slow, torch.full_like(prev, math.inf), prev)
                    break
                if absorb_due(u.log(), v.log()):
                    break
            if not idx.numel():
                break
            f = f + e[:, None] * u.log()
            g = g + e[:, None] * v.log()
            if not last:
                k += 1
        err = float(out_err.max()) if Bn else 0.0
        gap = None
        if rtol is not None and Bn:
            gap = float(((out_u - out_l) / out_l.abs().clamp_min(1e-30)).max())
    if C.requires_grad:  # <P, C> with the plan detached: its gradient is the plan (envelope theorem)
        with torch.no_grad():
            logP = (out_phi.unsqueeze(2) + out_psi.unsqueeze(1) - C.detach()) / out_eps[:, None, None]
            keep = (out_phi > -math.inf).unsqueeze(2) & (out_psi > -math.inf).unsqueeze(1)
            P = logP.masked_fill_(~keep, -math.inf).exp_().add_(out_er.unsqueeze(2) * out_ec.unsqueeze(1))
        tc = (P * torch.where(P > 0, C, torch.zeros((), dtype=dt, device=dev))).sum((1, 2))
    else:
        tc = out_u
    return BatchedResult(transport_cost=tc, f=out_f, g=out_g, epsilon=out_eps, n_iter=n_iter,
                         marginal_error=err, lower=None if rtol is None else out_l, gap=gap,
                         converged=bool(out_ok.all() and torch.isfinite(out_f).all() and torch.isfinite(out_g).all()))
