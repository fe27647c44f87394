"""The scaling iteration of Sinkhorn that every kernel backend runs, and its rules.

Sinkhorn's matrix scaling alternates ``u <- 1 / K (b v)`` and ``v <- 1 / K^T (a u)`` on a Gibbs
kernel ``K``. :func:`scaling_loop` is that iteration, written once; a backend supplies only the
operator, the two products ``x -> K x`` and ``y -> K^T y`` (a stored dense kernel in
:mod:`.dense`, a truncated sparse one in :mod:`.sparse`). What varies between solves is a *step*
(:class:`Plain`, :class:`OverRelaxation`, :class:`~.anderson.AndersonScaling`): how the new
scalings are formed from the products.

The rules that keep the scalings in range, shared by every backend (and by
:mod:`otdata.ot.batched`):

* **shift**: a kernel is built with each row's maximum shifted to 1, the shift moved into the
  potential ``f``; ``exp(shift)``, clamped to ``exp(+-ABSORB)``, is the scaling that leaves the
  plan unchanged (:func:`shift_scaling`); a row without a finite maximum is not shifted
  (:func:`finite_or_zero`);
* **absorb**: once a scaling leaves ``[exp(-ABSORB), exp(ABSORB)]`` the loop stops, the caller
  moves ``eps log u`` and ``eps log v`` into the potentials and rebuilds the kernel from the cost
  (:func:`absorb_due`);
* **fallback**: over-relaxation drops to plain updates for good when the marginal error grows
  past ten times the best seen (:class:`OverRelaxation`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: scalings beyond ``exp(+-ABSORB)`` are absorbed into the potentials and the kernel rebuilt.
ABSORB = 20.0

#: over-relaxation falls back to plain updates when the error exceeds this many times its best.
FALLBACK_FACTOR = 10.0


def epsilon_schedule(eps0: float, eps: float, scaling: float) -> list[float]:
    """Geometric annealing ``eps0, eps0*scaling, ...`` down to (and ending with) ``eps``."""
    if not 0 < scaling < 1:
        raise ValueError(f"scaling must be in (0, 1), got {scaling}")
    if not (math.isfinite(eps0) and math.isfinite(eps)):
        raise ValueError(f"epsilon schedule from {eps0} to {eps}: both must be finite")
    out = []
    e = max(eps0, eps)
    while e > eps:
        out.append(e)
        e *= scaling
    out.append(eps)
    return out


def finite_or_zero(m: Tensor) -> Tensor:
    """Row maxima with the non-finite ones (rows without mass) replaced by 0: no shift."""
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def shift_scaling(shift: Tensor) -> Tensor:
    """``exp(shift)`` clamped to the absorb range: the scaling that keeps the plan of a kernel
    built with ``shift`` moved into its potential (warm potentials are not thrown away)."""
    return shift.clamp(-ABSORB, ABSORB).exp()


def absorb_due(log_u: Tensor, log_v: Tensor | None = None) -> bool:
    """Whether the scalings left the absorb range (``max |log u|, |log v| > ABSORB``)."""
    m = log_u.abs().max() if log_v is None else torch.maximum(log_u.abs().max(), log_v.abs().max())
    return float(m) > ABSORB


class Plain:
    """Plain Sinkhorn updates ``u = 1 / K b v``, ``v = 1 / K^T a u``."""

    #: stop on the pair whose column error was measured, before forming the next ``v``.
    stops_on_measured_pair = False

    def start(self) -> None:
        """A new kernel was built (its scalings restart at the shift)."""

    def rows(self, u: Tensor, un: Tensor) -> Tensor:
        return un

    def columns(self, v: Tensor, c: Tensor, err: float) -> tuple[Tensor, Tensor | None]:
        """The next ``v`` from the column products ``c = K^T a u``, and what the absorb rule reads
        as ``log v`` (``None``: ``v.log()``)."""
        return c.reciprocal_(), None

    def observe(self, err: float) -> None:
        """The marginal error of an iteration that did not meet the tolerance."""


class OverRelaxation(Plain):
    """Over-relaxed updates ``u <- u^(1 - omega) (1 / K b v)^omega`` (and ``v`` alike), ``omega``
    dropping to 1 for the rest of the solve when the error exceeds ``FALLBACK_FACTOR`` times the
    best seen (the over-relaxation is diverging)."""

    def __init__(self, omega: float):
        self.omega, self.best = float(omega), math.inf

    def rows(self, u: Tensor, un: Tensor) -> Tensor:
        return un if self.omega == 1.0 else u.pow(1.0 - self.omega).mul_(un.pow_(self.omega))

    def columns(self, v: Tensor, c: Tensor, err: float) -> tuple[Tensor, Tensor | None]:
        if self.omega == 1.0:
            return c.reciprocal_(), None
        return v.pow(1.0 - self.omega).mul_(c.pow_(-self.omega)), None

    def observe(self, err: float) -> None:
        self.best = min(self.best, err)
        if self.omega != 1.0 and err > FALLBACK_FACTOR * self.best:
            self.omega = 1.0


PLAIN = Plain()


def scaling_loop(mv, rmv, a: Tensor, b: Tensor, u: Tensor, v: Tensor, iters: int, tol: float,
                 symmetric: bool = False, step: Plain = PLAIN):
    """Up to ``iters`` scaling iterations on the kernel behind ``mv`` (``x -> K x``) and ``rmv``
    (``y -> K^T y``); returns ``u, v, iterations, error, converged``.

    ``error``: the L1 marginal error measured in the last iteration (columns; rows for a symmetric
    problem); ``converged``: it is below ``tol``. The loop also stops, not converged, when the
    scalings leave the absorb range (:func:`absorb_due`): the caller absorbs them and rebuilds.
    ``symmetric`` (``a = b``, ``K = K^T``): the averaged update ``u <- sqrt(u / K (a u))``, ``v = u``.
    Otherwise ``step`` forms the new scalings (plain, over-relaxed or Anderson-extrapolated)."""
    tiny = torch.finfo(u.dtype).tiny
    err = math.inf
    step.start()
    for k in range(iters):
        log_v = None
        if symmetric:
            s = mv(a * u).clamp_min_(tiny)
            err = float((a * (u * s - 1).abs()).sum())
            u = (u / s).sqrt_()
            v = u
        else:
            u = step.rows(u, mv(b * v).clamp_min_(tiny).reciprocal_())
            c = rmv(a * u).clamp_min_(tiny)
            err = float((b * (v * c - 1).abs()).sum())
            if step.stops_on_measured_pair and err < tol:
                return u, v, k + 1, err, True
            v, log_v = step.columns(v, c, err)
        if err < tol:
            return u, v, k + 1, err, True
        step.observe(err)
        if absorb_due(u.log(), None if symmetric else (v.log() if log_v is None else log_v)):
            return u, v, k + 1, err, False
    return u, v, iters, err, False
