"""Many small entropic OT problems solved together: :func:`batched_sinkhorn`.

The ``"exact"`` label distance of OTDD needs ``W_p^p`` between every pair of classes, ``C1 x C2``
problems of a few hundred points each. One POT call per pair spends its time in per-call overhead
and in the network simplex' superlinear cost; here the pairs are stacked into one padded
``(B, n, m)`` batch and iterated together with batched matrix-vector products at a small epsilon
(relative to each problem's mean cost), which puts the transport cost within a fraction of a
percent of exact OT (the tests check 1 % against POT ``emd2``).

Stabilisation is that of the dense solver in :mod:`otdata.ot.sinkhorn`: each problem anneals
epsilon from its largest cost, the kernel ``exp((f + g - C) / eps)`` is rebuilt from the cost at
every level and whenever the scalings grow (they are absorbed into the potentials first), never
obtained by powering an earlier kernel. Padding carries zero weight and an infinite cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._threads import single_thread
from .sinkhorn import SINGLE_THREAD_ELEMENTS

#: absorb the scalings into the potentials when max |log u|, |log v| exceeds this.
_ABSORB = 20.0


@dataclass
class BatchedResult:
    """Output of :func:`batched_sinkhorn`: per problem ``transport_cost`` ``<pi, C>`` (``(B,)``,
    differentiable w.r.t. ``C`` by the envelope theorem), potentials ``f`` ``(B, n)`` and ``g``
    ``(B, m)``, absolute ``epsilon`` ``(B,)``; ``n_iter`` (all levels), ``marginal_error`` (largest
    L1 violation in the batch) and ``converged`` (every problem below ``tol``)."""

    transport_cost: Tensor
    f: Tensor
    g: Tensor
    epsilon: Tensor
    n_iter: int
    marginal_error: float
    converged: bool


def _build(Cm: Tensor, f: Tensor, g: Tensor, e: Tensor, ma: Tensor):
    """``K = exp((f + g - C) / e)`` with each row's maximum shifted to 1 and the shift moved into
    ``f``; returns ``K, f, u0`` (``u0 = exp(shift)`` keeps the plan unchanged)."""
    T = (f.unsqueeze(2) + g.unsqueeze(1) - Cm).div_(e[:, None, None])
    s = T.amax(2)
    s = torch.where(ma & torch.isfinite(s), s, torch.zeros_like(s))
    K = T.sub_(s.unsqueeze(2)).exp_()
    return K, f - e[:, None] * s, s.clamp(-_ABSORB, _ABSORB).exp()


def batched_sinkhorn(C: Tensor, a: Tensor, b: Tensor, epsilon: Tensor, *, tol: float = 1e-4,
                     max_iter: int = 3000, scaling: float = 0.5, overrelax: float = 1.8) -> BatchedResult:
    """Entropic OT for a batch of problems ``(a[k], b[k], C[k])``.

    ``C``: ``(B, n, m)`` costs (may carry autograd history; entries where a weight is zero are
    ignored); ``a`` ``(B, n)`` and ``b`` ``(B, m)``: non-negative weights summing to one per
    problem, zero on padding; ``epsilon``: ``(B,)`` absolute regularisation per problem. Each
    problem anneals from its largest cost by ``scaling`` per level (one iteration per level, as
    GeomLoss does), then iterates at its epsilon, over-relaxed by ``overrelax`` (falling back to
    plain updates if the error grows), until the largest L1 marginal error of the batch is below
    ``tol`` or ``max_iter`` iterations ran.
    """
    if C.ndim != 3 or a.shape != C.shape[:2] or b.shape != (C.shape[0], C.shape[2]):
        raise ValueError(f"shapes: C (B, n, m), a (B, n), b (B, m); got {tuple(C.shape)}, "
                         f"{tuple(a.shape)}, {tuple(b.shape)}")
    with torch.no_grad(), single_thread(C.numel() <= SINGLE_THREAD_ELEMENTS):
        a, b = a.detach().to(C.dtype), b.detach().to(C.dtype)
        eps = torch.as_tensor(epsilon, dtype=C.dtype, device=C.device).expand(C.shape[0]).clone()
        ma, mb = a > 0, b > 0
        mask = ma.unsqueeze(2) & mb.unsqueeze(1)
        Cm = C.detach().masked_fill(~mask, math.inf)
        cmax = C.detach().masked_fill(~mask, -math.inf).amax((1, 2)).clamp_min(0)
        ratio = float((cmax / eps).max())
        levels = max(0, math.ceil(math.log(max(ratio, 1.0)) / -math.log(scaling)))
        f, g = a.new_zeros(a.shape), b.new_zeros(b.shape)
        tiny = torch.finfo(C.dtype).tiny
        n_iter, err, omega, best = 0, float("inf"), 1.0, float("inf")
        for k in range(levels + 1):
            e = torch.maximum(cmax * scaling**k, eps) if k < levels else eps
            budget = max_iter if k == levels else 1
            if k == levels:
                omega = overrelax
            while budget > 0:
                K, f, u = _build(Cm, f, g, e, ma)
                v = torch.ones_like(g)
                grown = False
                while budget > 0 and not grown:
                    un = torch.bmm(K, (b * v).unsqueeze(2)).squeeze(2).clamp_min_(tiny).reciprocal_()
                    un = torch.where(ma, un, torch.ones_like(un))
                    u = un if omega == 1.0 else u.pow(1.0 - omega) * un.pow(omega)
                    c = torch.bmm((a * u).unsqueeze(1), K).squeeze(1).clamp_min_(tiny)
                    err = float((b * (v * c - 1).abs()).sum(1).max())
                    vn = torch.where(mb, c.reciprocal(), torch.ones_like(c))
                    v = vn if omega == 1.0 else v.pow(1.0 - omega) * vn.pow(omega)
                    budget -= 1
                    n_iter += 1
                    if k == levels:
                        if err < tol:
                            budget = 0
                        best = min(best, err)
                        if omega != 1.0 and err > 10.0 * best:
                            omega = 1.0
                    grown = float(torch.maximum(u.log().abs().amax(), v.log().abs().amax())) > _ABSORB
                f = f + e[:, None] * u.log()
                g = g + e[:, None] * v.log()
        f = torch.where(ma, f, torch.zeros_like(f))
        g = torch.where(mb, g, torch.zeros_like(g))
        logP = (f.unsqueeze(2) + g.unsqueeze(1) - Cm) / eps[:, None, None]
        P = logP.exp_().mul_(a.unsqueeze(2)).mul_(b.unsqueeze(1))
    Cz = torch.where(mask, C, torch.zeros((), dtype=C.dtype, device=C.device))
    tc = (P * Cz).sum((1, 2))
    return BatchedResult(transport_cost=tc, f=f, g=g, epsilon=eps, n_iter=n_iter, marginal_error=err,
                         converged=bool(err < tol and torch.isfinite(f).all() and torch.isfinite(g).all()))
