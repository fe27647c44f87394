"""The dense backend: scaling iterations on a stored Gibbs kernel.

:class:`DenseKernel` keeps the cost ``C`` (read only) and one ``(n, m)`` buffer ``K_ij = exp((f_i +
g_j - C_ij) / eps)`` for the current potentials, normalised so that each row's (or, symmetric, the
symmetric) maximum is 1 with the shift absorbed into ``f``. An iteration is then two
matrix-vector products (:func:`.scaling.scaling_loop`) instead of two log-sum-exp passes. The
scalings ``u``, ``v`` are absorbed into the potentials at every epsilon level and whenever they
grow large, and the kernel is then **rebuilt from ``C``** (one ``exp`` pass). It is never obtained
by powering the previous kernel: entries that underflowed at a coarse epsilon would stay zero for
good, leaving potentials inconsistent with the cost (infinite couplings and wrong values in
float32). Entries below the floating point range relative to their row maximum (``exp(-87)`` in
float32) carry no mass. At the target epsilon the iterations take the configured acceleration.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from .._exp import exp_
from .anderson import AndersonScaling
from .scaling import PLAIN, OverRelaxation, Plain, finite_or_zero, scaling_loop, shift_scaling


def acceleration_step(acceleration: str, overrelax: float, b: Tensor, symmetric: bool) -> Plain:
    """The step of the iterations at the target epsilon: ``"anderson"`` (non-symmetric problems),
    ``"overrelax"`` (by ``overrelax``) or plain updates."""
    if acceleration == "anderson" and not symmetric:
        return AndersonScaling(b)
    if acceleration == "overrelax":
        return OverRelaxation(overrelax)
    return PLAIN


class DenseKernel:
    """Scaling iterations on the stored cost ``C`` (see the module docstring)."""

    def __init__(self, C: Tensor, a: Tensor, b: Tensor, symmetric: bool, block_elements: int):
        self.C, self.a, self.b, self.symmetric = C, a, b, symmetric
        self.K = torch.empty_like(C)
        self.n, self.m = C.shape
        self.step = max(1, min(block_elements, 1 << 18) // max(self.m, 1))
        self.eps = None
        self.mv_threads = 1

    def _mv(self, x: Tensor) -> Tensor:
        with self._big():
            return torch.mv(self.K, x)

    def _rmv(self, x: Tensor) -> Tensor:
        with self._big():
            return torch.mv(self.K.T, x)

    @contextlib.contextmanager
    def _big(self):
        """Work over the whole kernel (mat-vecs, builds) on ``mv_threads`` (vector work: one)."""
        if self.mv_threads == 1:
            yield
            return
        torch.set_num_threads(self.mv_threads)
        try:
            yield
        finally:
            torch.set_num_threads(1)

    def _rows(self):
        for i0 in range(0, self.n, self.step):
            yield i0, min(self.n, i0 + self.step)

    def _build(self, f: Tensor, g: Tensor, e: float, normalise: bool = True):
        with self._big():
            return self._build_kernel(f, g, e, normalise)

    def _build_kernel(self, f: Tensor, g: Tensor, e: float, normalise: bool):
        """``K <- exp((f + g - C) / e)``; returns ``f, g, u0``.

        ``normalise``: shift each row (or, symmetric, rows and columns) so that its maximum is 1 —
        no row underflows as a whole at the first, potential-free build — and move the shift into
        the returned potentials; ``u0`` (:func:`.scaling.shift_scaling`) keeps the plan unchanged.
        Without it, ``K`` is exactly the kernel of ``f, g`` (used once at the end, when the
        potentials are accurate and ``K_ij <= min(1/a_i, 1/b_j)`` cannot overflow)."""
        hf, hg = f / e, g / e

        def scores(i0, i1, row_term: bool):  # (g_j - C_ij) / e [+ f_i / e], written into K's rows
            blk = torch.sub(hg.unsqueeze(0), self.C[i0:i1], alpha=1.0 / e, out=self.K[i0:i1])
            return blk.add_(hf[i0:i1].unsqueeze(1)) if row_term else blk

        if not normalise:
            for i0, i1 in self._rows():
                exp_(scores(i0, i1, True))
            return f, g, torch.ones_like(f)
        mx = torch.empty_like(f)
        if not self.symmetric:
            # one pass: a row's shift cancels f_i, so its scores leave it out (shift = f_i / e + max)
            for i0, i1 in self._rows():
                blk = scores(i0, i1, False)
                m = finite_or_zero(blk.amax(1, keepdim=True))
                exp_(blk.sub_(m))
                mx[i0:i1] = m.squeeze(1)
            shift = hf + mx
        else:  # the shift of a row depends on every row's maximum: two passes
            for i0, i1 in self._rows():
                mx[i0:i1] = scores(i0, i1, True).amax(1)
            shift = 0.5 * finite_or_zero(mx)
            for i0, i1 in self._rows():
                exp_(self.K[i0:i1].sub_(shift[i0:i1].unsqueeze(1)).sub_(shift.unsqueeze(0)))
        f = f - e * shift
        return f, (f if self.symmetric else g), shift_scaling(shift)

    def _absorb(self, f, g, u, v, e):
        f = f + e * u.log()
        return f, (f if self.symmetric else g + e * v.log())

    def solve(self, f, g, schedule, max_iter, tol, level_iter, omega=1.0, acceleration="overrelax"):
        """Anneal along ``schedule`` (``level_iter`` plain iterations per intermediate level), then
        iterate at its last epsilon, accelerated, until the L1 marginal error is below ``tol`` or
        ``max_iter`` iterations ran; returns ``f, g, iterations, error, converged``. Leaves ``K``
        holding the kernel of the returned potentials (for :meth:`transport_cost`)."""
        n_it, err, converged = 0, float("inf"), False
        final = acceleration_step(acceleration, omega, self.b, self.symmetric)
        if self.symmetric:
            g = f
        for k, e in enumerate(schedule):
            last = k == len(schedule) - 1
            budget = max_iter if last else level_iter
            while budget > 0:
                f, g, u0 = self._build(f, g, e)
                u, v, used, err, converged = scaling_loop(
                    self._mv, self._rmv, self.a, self.b, u0, u0 if self.symmetric else torch.ones_like(g),
                    budget, tol if last else 0.0, self.symmetric, final if last else PLAIN)
                f, g = self._absorb(f, g, u, v, e)
                budget -= used
                n_it += used
                if converged:
                    break
        e = schedule[-1]
        f, g, _ = self._build(f, g, e, normalise=False)  # the kernel of the final potentials
        if self.symmetric:  # final exact step keeps f and g equal and symmetric
            s = torch.mv(self.K, self.a).clamp_min_(torch.finfo(self.K.dtype).tiny)
            half = s.rsqrt()
            for i0, i1 in self._rows():
                self.K[i0:i1].mul_(half[i0:i1].unsqueeze(1)).mul_(half.unsqueeze(0))
            f = f - 0.5 * e * s.log()
            g = f
        self.eps = e
        return f, g, n_it, err, converged

    def transport_cost(self, f: Tensor, g: Tensor) -> Tensor:
        """``<pi, C>`` with ``pi_ij = a_i b_j B_ij`` and ``C_ij = f_i + g_j - eps log B_ij``."""
        total = torch.zeros((), dtype=torch.float64, device=f.device)
        for i0, i1 in self._rows():
            Bb = self.K[i0:i1]
            P = Bb * self.b.unsqueeze(0)
            rows = P.sum(1)
            t = (self.a[i0:i1] * rows * f[i0:i1]).sum() + (self.a[i0:i1].unsqueeze(1) * P).sum(0) @ g
            t = t - self.eps * (self.a[i0:i1] * (torch.xlogy(Bb, Bb) * self.b.unsqueeze(0)).sum(1)).sum()
            total += t.double()
        return total.to(f.dtype)
