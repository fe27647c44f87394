"""Anderson acceleration, a pluggable step of the Sinkhorn iterations.

:class:`Anderson` extrapolates a fixed-point map ``x -> G(x)`` from its last ``depth`` steps, with
one restart rule (the memory is dropped when the error grows past twice the best seen). It
accelerates the log-domain passes of :mod:`.online` (on the potential ``g``) and, wrapped as
:class:`AndersonScaling`, the scaling iterations of :mod:`.scaling` (on ``log v``). Iteration
counts measured with and without it are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .scaling import ABSORB, Plain

#: steps remembered.
DEPTH = 5

#: the memory is dropped when the error exceeds this many times the best seen.
RESTART_FACTOR = 2.0


class Anderson:
    """Anderson acceleration (type II, ``depth`` last steps) of a fixed-point map ``x -> G(x)``:
    the next point is ``G(x)`` corrected by the combination of the recent steps that best cancels
    the residual ``G(x) - x`` in the ``weight``-weighted norm (a small ridge keeps it stable)."""

    def __init__(self, depth: int, weight: Tensor):
        self.depth, self.w = depth, weight.double().sqrt()
        self.X, self.R = [], []
        self.best = math.inf

    def reset(self) -> None:
        """Forget the steps (not the best error)."""
        self.X, self.R = [], []

    def update(self, x: Tensor, gx: Tensor, err: float) -> Tensor:
        """The extrapolated point after the plain step ``gx = G(x)`` whose error was ``err``;
        restarts from the plain step when the error grew (the extrapolation went astray)."""
        if err > RESTART_FACTOR * self.best:
            self.reset()
        self.best = min(self.best, err)
        return self.step(x, gx)

    def step(self, x: Tensor, gx: Tensor) -> Tensor:
        x64, r = x.double(), gx.double() - x.double()
        self.X.append(x64)
        self.R.append(r)
        if len(self.X) > self.depth + 1:
            self.X.pop(0)
            self.R.pop(0)
        if len(self.X) < 2:
            return gx
        dX = torch.stack([u - v for u, v in zip(self.X[1:], self.X[:-1])])
        dR = torch.stack([u - v for u, v in zip(self.R[1:], self.R[:-1])])
        A = dR * self.w
        M = A @ A.T
        M += (1e-10 * float(M.diagonal().sum()) + 1e-300) * torch.eye(len(M), dtype=M.dtype, device=M.device)
        try:
            gamma = torch.linalg.solve(M, A @ (r * self.w))
        except RuntimeError:  # no information in the steps (a stalled map): the plain step
            self.reset()
            return gx
        out = gx.double() - gamma @ (dX + dR)
        return out.to(gx.dtype) if bool(torch.isfinite(out).all()) else gx


class AndersonScaling(Plain):
    """The scaling step whose ``log v`` is extrapolated by :class:`Anderson` (weights ``b``) from the
    plain updates. It stops on a pair ``(u, v)`` with ``u = 1 / K b v`` (rows exact) whose column
    error was measured: an extrapolated ``v`` is not a Sinkhorn iterate. Its history is in ``log
    v`` relative to the potentials of one kernel, so a rebuilt kernel starts it afresh.

    The absorb rule is handed the new ``v`` itself where the plain steps hand it ``log v``: the
    kernel is rebuilt once some ``v_j`` exceeds ``ABSORB`` (``log v_j > 3``), sooner than the plain
    steps' rule. The results in ``benchmarks/RESULTS.md`` were measured with this rule."""

    stops_on_measured_pair = True

    def __init__(self, weight: Tensor, depth: int = DEPTH):
        self.anderson = Anderson(depth, weight)

    def start(self) -> None:
        self.anderson.reset()

    def columns(self, v: Tensor, c: Tensor, err: float) -> tuple[Tensor, Tensor]:
        x = self.anderson.update(v.log(), c.log().neg_(), err)
        v = x.clamp_(-3.0 * ABSORB, 3.0 * ABSORB).exp_()
        return v, v
