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


def _check_batch(C: Tensor, a: Tensor, b: Tensor, rtol: float | None) -> None:
    if C.ndim != 3 or a.shape != C.shape[:2] or b.shape != (C.shape[0], C.shape[2]):
        raise ValueError(f"shapes: C (B, n, m), a (B, n), b (B, m); got {tuple(C.shape)}, "
                         f"{tuple(a.shape)}, {tuple(b.shape)}")
    if rtol is not None and not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")


def _iterate(K, KT, a, b, ma, mb, u, v, omega: float):
    """One (over-relaxed) scaling iteration of every problem; returns ``u, v`` and each problem's
    column marginal error before the ``v`` update. Padding keeps scalings 1."""
    tiny = torch.finfo(K.dtype).tiny
    un = _vm(b * v, KT).clamp_min_(tiny).reciprocal_()
    un = torch.where(ma, un, torch.ones_like(un))
    u = un if omega == 1.0 else u.pow(1.0 - omega) * un.pow(omega)
    c = _vm(a * u, K).clamp_min_(tiny)
    perr = (b * (v * c - 1).abs()).sum(1)
    vn = torch.where(mb, c.reciprocal(), torch.ones_like(c))
    v = vn if omega == 1.0 else v.pow(1.0 - omega) * vn.pow(omega)
    return u, v, perr


def _certified_stop(U, L, M, rtol: float, prev, halved, out_of_budget):
    """From the bounds ``U``, ``L`` (and ``M``, :func:`_certificate`): which problems stop (gap
    within ``rtol``, or out of budget), which are slow (the gap hardly shrinks since ``prev`` and
    most of it is not the marginal error's: the entropic bias of this epsilon exceeds ``rtol``, so
    it is halved, three times at most), which are certified, and the gaps (the next ``prev``)."""
    rel = (U - L) / L.abs().clamp_min(torch.finfo(U.dtype).tiny)
    ok = rel <= rtol
    stop = ok | out_of_budget
    slow = ~stop & (rel > 0.8 * prev) & (M - L > 0.6 * rtol * L.abs()) & (halved < 3)
    return stop, slow, ok, rel


class _Outputs:
    """Per problem, filled in when it stops: potentials, value, bounds, error, epsilon and the
    rounded plan's factors (for gradients)."""

    def __init__(self, a: Tensor, b: Tensor, eps_all: Tensor):
        Bn = a.shape[0]
        self.f, self.g = a.new_zeros(a.shape), b.new_zeros(b.shape)
        self.u, self.l = a.new_full((Bn,), math.nan), a.new_full((Bn,), math.nan)
        self.err, self.eps = a.new_zeros(Bn), eps_all.clone()
        self.ok = torch.zeros(Bn, dtype=torch.bool, device=a.device)
        self.phi, self.psi = a.new_zeros(a.shape), b.new_zeros(b.shape)
        self.er, self.ec = a.new_zeros(a.shape), b.new_zeros(b.shape)

    def record(self, j, s, f, g, u, v, e, perr, plan) -> None:
        """Problems ``s`` of the batch (``j`` overall) stopped with scalings ``u, v`` on the
        potentials ``f, g`` at ``e``; ``plan = (al, be, er, ec)``: the plan's factors."""
        al, be, er, ec = plan
        es = e[s, None]
        self.f[j] = (f + e[:, None] * u.log())[s]
        self.g[j] = (g + e[:, None] * v.log())[s]
        self.err[j], self.eps[j] = perr[s], e[s]
        self.phi[j] = f[s] + es * al[s].log()
        self.psi[j] = g[s] + es * be[s].log()
        self.er[j], self.ec[j] = er[s], ec[s]

    def result(self, C: Tensor, n_iter: int, rtol: float | None) -> BatchedResult:
        Bn = C.shape[0]
        with torch.no_grad():
            err = float(self.err.max()) if Bn else 0.0
            gap = None
            if rtol is not None and Bn:
                gap = float(((self.u - self.l) / self.l.abs().clamp_min(1e-30)).max())
        if C.requires_grad:  # <P, C> with the plan detached: its gradient is the plan (envelope theorem)
            with torch.no_grad():
                logP = (self.phi.unsqueeze(2) + self.psi.unsqueeze(1) - C.detach()) / self.eps[:, None, None]
                keep = (self.phi > -math.inf).unsqueeze(2) & (self.psi > -math.inf).unsqueeze(1)
                P = logP.masked_fill_(~keep, -math.inf).exp_().add_(self.er.unsqueeze(2) * self.ec.unsqueeze(1))
            tc = (P * torch.where(P > 0, C, torch.zeros((), dtype=C.dtype, device=C.device))).sum((1, 2))
        else:
            tc = self.u
        finite = torch.isfinite(self.f).all() and torch.isfinite(self.g).all()
        return BatchedResult(transport_cost=tc, f=self.f, g=self.g, epsilon=self.eps, n_iter=n_iter,
                             marginal_error=err, lower=None if rtol is None else self.l, gap=gap,
                             converged=bool(self.ok.all() and finite))


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
    _check_batch(C, a, b, rtol)
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
        out = _Outputs(a, b, eps_all)

        idx = torch.arange(Bn, device=dev)   # the problems still iterating, and their state:
        eps = eps_all.clone()                # (halved where the gap stalls)
        prev = a.new_full((Bn,), math.inf)   # certified gap at the previous check
        halved = torch.zeros(Bn, dtype=torch.long, device=dev)
        f, g = a.new_zeros(a.shape), b.new_zeros(b.shape)
        n_iter, it_final, k, relax = 0, 0, 0, OverRelaxation(overrelax)  # (at the target epsilon)
        while idx.numel():
            last = k >= levels
            e = eps if last else torch.maximum(cmax * scaling**k, eps)
            omega = relax.omega if last else 1.0
            K, f, u = _build(Cm, f, g, e, ma)
            KT = K.mT.contiguous()
            v = torch.ones_like(g)
            while True:
                u, v, perr = _iterate(K, KT, a, b, ma, mb, u, v, omega)
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
                    stop, slow, ok, prev = _certified_stop(U, L, M, rtol, prev, halved, out_of_budget)
                else:
                    stop = slow = None
                if stop is not None and bool(stop.any()):
                    s = stop.nonzero().squeeze(1)
                    j = idx[s]
                    if rtol is None:
                        al, be = a * u, b * v
                        out.u[j] = _plan_cost(K[s], Cz[s], al[s], be[s])
                        out.ok[j] = perr[s] < tol
                        er, ec = torch.zeros_like(a), torch.zeros_like(b)
                    else:
                        out.u[j], out.l[j], out.ok[j] = U[s], L[s], ok[s]
                    out.record(j, s, f, g, u, v, e, perr, (al, be, er, ec))
                    keep = (~stop).nonzero().squeeze(1)
                    idx = idx[keep]
                    if not idx.numel():
                        break
                    K, KT, Cm, Cz, a, b, ma, mb, eps, e, cmax, halved, f, g, u, v, prev = (
                        t[keep] for t in (K, KT, Cm, Cz, a, b, ma, mb, eps, e, cmax, halved, f, g, u, v, prev))
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
    return out.result(C, n_iter, rtol)
