"""Log-domain Sinkhorn with epsilon-scaling, dense or online (blocked) cost, exact gradients.

Conventions (all costs are ground costs ``C``, marginals ``a``, ``b`` sum to one):

* **transport cost** ``<pi, C> = sum_ij pi_ij C_ij`` of the entropic coupling
  ``pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``. As ``eps -> 0`` it tends to exact OT
  (``ot.emd2``). This is :attr:`SinkhornResult.transport_cost`.
* **entropic objective** ``OT_eps(a, b) = min_pi <pi, C> + eps KL(pi | a x b)``, which at the
  optimum equals the dual value ``<a, f> + <b, g>``. This is :attr:`SinkhornResult.entropic`
  and the differentiable :attr:`SinkhornResult.loss`.
* **Sinkhorn divergence** ``S_eps = OT_eps(a, b) - OT_eps(a, a)/2 - OT_eps(b, b)/2``
  (:func:`sinkhorn_divergence`); ``S_eps(a, a) = 0``.

``epsilon`` is **absolute** here, in the units of the cost (same convention as POT's ``reg`` and
GeomLoss' ``blur**p``); callers that want it relative to the cost scale resolve it with
:class:`~otdata.ot.config.SinkhornConfig` (the project's default). Every solve anneals epsilon from
``max C`` down to the target (epsilon-scaling) and reports whether it converged (see
:func:`sinkhorn`: convergence or a loud warning, never a silent wrong number).

Gradients use the envelope theorem: iterations run under ``no_grad``; one final differentiable
pass evaluates ``<pi, C>`` with ``pi`` built from the detached potentials, so
``d loss / d theta = sum_ij pi_ij dC_ij / d theta`` exactly (the GeomLoss trick). In online mode
that pass is checkpointed per block, so memory stays O(n + m) in the backward too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ._threads import single_thread
from ._exp import exp, exp_
from .config import ACCELERATIONS, BACKENDS, DEFAULT_MAX_DENSE_BYTES, SinkhornConfig
from .costs import Cost, MatrixCost, PointCloudCost
from .sparse import solve_sparse


class ConvergenceWarning(UserWarning):
    """A Sinkhorn solve stopped before reaching its tolerance: its numbers may be off."""


class ConvergenceError(RuntimeError):
    """A Sinkhorn solve did not converge and ``strict=True`` was asked for."""

#: dense problems up to this many entries are solved on one thread (per-op overhead dominates).
SINGLE_THREAD_ELEMENTS = 1 << 24

#: elements per row block (rows * m) for the blocked log-sum-exp.
DEFAULT_BLOCK_ELEMENTS = 1 << 23

#: steps remembered by the Anderson acceleration of full passes.
ANDERSON_DEPTH = 5

#: rows per block of a full pass computed from score factors (one product per block).
FUSED_ROWS = 512

#: problems with at least this many cost entries log their full passes (progress and time left).
PROGRESS_ELEMENTS = 1 << 28

log = logging.getLogger(__name__)


def _as_cost(cost) -> Cost:
    if isinstance(cost, Cost):
        return cost
    if isinstance(cost, Tensor):
        return MatrixCost(cost)
    raise TypeError(f"cost must be a torch.Tensor (n, m) or an otdata.ot.Cost, got {type(cost).__name__}")


def _uniform(n: int, like: Cost) -> Tensor:
    return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)


class _Engine:
    """Row-block iteration over a cost: stored dense matrix or recomputed blocks."""

    def __init__(self, cost: Cost, backend: str, max_dense_bytes: int, block_elements: int):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.cost = cost
        n, m = cost.n, cost.m
        nbytes = n * m * torch.tensor([], dtype=cost.dtype).element_size()
        if backend == "auto":
            if isinstance(cost, MatrixCost) or nbytes <= max_dense_bytes:
                backend = "dense"
            else:  # too big to store: truncated kernel when no gradient flows through the cost
                backend = "sparse" if isinstance(cost, PointCloudCost) and not cost.requires_grad else "online"
        if backend == "sparse" and not isinstance(cost, PointCloudCost):
            raise ValueError("backend='sparse' needs a PointCloudCost (it subsamples rows and columns)")
        self.backend = backend
        self.step = max(1, block_elements // max(m, 1))
        self.C = cost.dense(self.step) if backend == "dense" else None
        self.kernel: _DenseKernel | None = None

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
            mx = T.amax(1, keepdim=True)
            mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
            s = exp_(T.sub_(mx)).sum(1)
            out[i0:i1] = mx.squeeze(1) + s.log()
        return out

    # g_j = -eps * LSE_i (k_i - C_ij / eps),  k = f / eps + log a
    def col_lse(self, k: Tensor, eps: float) -> Tensor:
        parts = []
        for i0, i1, Cb in self.blocks():
            T = torch.sub(k[i0:i1].unsqueeze(1), Cb, alpha=1.0 / eps)
            mx = T.amax(0, keepdim=True)
            mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
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
            mx = L.amax(1, keepdim=True)
            mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
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



class _DenseKernel:
    """Scaling iterations on a stored Gibbs kernel (dense backend).

    Keeps the cost ``C`` (read only) and one ``(n, m)`` buffer ``K_ij = exp((f_i + g_j - C_ij) /
    eps)`` for the current potentials, normalised so that each row's (or, symmetric, the
    symmetric) maximum is 1 with the shift absorbed into ``f``. An iteration is then two
    matrix-vector products instead of two log-sum-exp passes. The scalings ``u``, ``v`` are
    absorbed into the potentials (``f += eps log u``) at every epsilon level and whenever they
    grow large, and the kernel is then **rebuilt from ``C``** (one ``exp`` pass). It is never
    obtained by powering the previous kernel: entries that underflowed at a coarse epsilon would
    stay zero for good, leaving potentials inconsistent with the cost (infinite couplings and
    wrong values in float32). Entries below the floating point range relative to their row
    maximum (``exp(-87)`` in float32) carry no mass. At the target epsilon the iterations are
    accelerated (:class:`_Anderson` by default, or over-relaxed).
    """

    #: absorb u, v into the potentials when max |log u|, |log v| exceeds this.
    ABSORB = 20.0

    def __init__(self, C: Tensor, a: Tensor, b: Tensor, symmetric: bool, block_elements: int):
        self.C, self.a, self.b, self.symmetric = C, a, b, symmetric
        self.K = torch.empty_like(C)
        self.n, self.m = C.shape
        self.step = max(1, min(block_elements, 1 << 18) // max(self.m, 1))
        self.eps = None
        self.mv_threads = 1

    def _mv(self, M: Tensor, x: Tensor) -> Tensor:
        with self._big():
            return torch.mv(M, x)

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
        the returned potentials; ``u0 = exp(shift)`` (clamped) is the scaling that keeps the plan
        unchanged, so warm potentials are not thrown away. Without it, ``K`` is exactly the
        kernel of ``f, g`` (used once at the end, when the potentials are accurate and
        ``K_ij <= min(1/a_i, 1/b_j)`` cannot overflow)."""
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
                m = blk.amax(1, keepdim=True)
                m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
                exp_(blk.sub_(m))
                mx[i0:i1] = m.squeeze(1)
            shift = hf + mx
        else:  # the shift of a row depends on every row's maximum: two passes
            for i0, i1 in self._rows():
                mx[i0:i1] = scores(i0, i1, True).amax(1)
            mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
            shift = 0.5 * mx
            for i0, i1 in self._rows():
                exp_(self.K[i0:i1].sub_(shift[i0:i1].unsqueeze(1)).sub_(shift.unsqueeze(0)))
        f = f - e * shift
        u0 = shift.clamp(-self.ABSORB, self.ABSORB).exp_()
        return f, (f if self.symmetric else g), u0

    def _absorb(self, f, g, u, v, e):
        f = f + e * u.log()
        return f, (f if self.symmetric else g + e * v.log())

    def _iterate(self, u, v, iters: int, tol: float, omega: float = 1.0, anderson: _Anderson | None = None):
        """Up to ``iters`` scaling iterations; returns ``u, v, n, err, converged`` (L1 marginal error).

        ``omega > 1``: over-relaxed updates ``u <- u^(1 - omega) (1 / K b v)^omega``. ``anderson``
        (non-symmetric): plain updates whose ``log v`` is extrapolated by Anderson acceleration; it
        stops on a pair ``(u, v)`` with ``u = 1 / K b v`` (rows exact) whose column error was measured."""
        a, b, K = self.a, self.b, self.K
        err = best = float("inf")
        tiny = torch.finfo(K.dtype).tiny
        if anderson is not None:
            anderson.reset()  # its history is in log v, relative to the potentials of this kernel
            for k in range(iters):
                u = self._mv(K, b * v).clamp_min_(tiny).reciprocal_()
                c = self._mv(K.T, a * u).clamp_min_(tiny)
                err = float((b * (v * c - 1).abs()).sum())
                if err < tol:
                    return u, v, k + 1, err, True
                if err > 2.0 * self.best:  # the extrapolation went astray: restart from the plain step
                    anderson.reset()
                self.best = min(self.best, err)
                x = anderson.step(v.log(), c.log().neg_())
                v = x.clamp_(-3.0 * self.ABSORB, 3.0 * self.ABSORB).exp_()
                if float(torch.maximum(u.log().abs().max(), x.abs().max())) > self.ABSORB:
                    return u, v, k + 1, err, False
            return u, v, iters, err, False
        for k in range(iters):
            if self.symmetric:  # averaged symmetric update u <- sqrt(u / K(a u))
                s = self._mv(K, a * u).clamp_min_(tiny)
                w = u * s
                err = float((a * (w - 1).abs()).sum())
                u = (u / s).sqrt_()
                v = u
            else:
                un = self._mv(K, b * v).clamp_min_(tiny).reciprocal_()
                u = un if omega == 1.0 else u.pow(1.0 - omega).mul_(un.pow_(omega))
                c = self._mv(K.T, a * u).clamp_min_(tiny)
                err = float((b * (v * c - 1).abs()).sum())
                v = c.reciprocal_() if omega == 1.0 else v.pow(1.0 - omega).mul_(c.pow_(-omega))
            if err < tol:
                return u, v, k + 1, err, True
            best = min(best, err)
            if omega != 1.0 and err > 10.0 * best:  # over-relaxation diverging: plain updates
                omega = self.omega = 1.0
            if float(torch.maximum(u.log().abs().max(), v.log().abs().max())) > self.ABSORB:
                return u, v, k + 1, err, False
        return u, v, iters, err, False

    def solve(self, f, g, schedule, max_iter, tol, level_iter, omega=1.0, acceleration="overrelax"):
        n_it, err, converged = 0, float("inf"), False
        self.omega = omega if acceleration == "overrelax" else 1.0
        self.best = float("inf")
        anderson = _Anderson(ANDERSON_DEPTH, self.b) if acceleration == "anderson" and not self.symmetric else None
        if self.symmetric:
            g = f
        for k, e in enumerate(schedule):
            last = k == len(schedule) - 1
            budget = max_iter if last else level_iter
            while budget > 0:
                f, g, u0 = self._build(f, g, e)
                u, v, used, err, converged = self._iterate(
                    u0, u0 if self.symmetric else torch.ones_like(g), budget, tol if last else 0.0,
                    self.omega if last else 1.0, anderson if last else None)
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


class _Anderson:
    """Anderson acceleration (type II, ``depth`` last steps) of a fixed-point map ``x -> G(x)``:
    the next point is ``G(x)`` corrected by the combination of the recent steps that best cancels
    the residual ``G(x) - x`` in the ``weight``-weighted norm (a small ridge keeps it stable). On
    the log-domain Sinkhorn map ``g -> T(T(g))`` of the MNIST/FashionMNIST cross term it cut the
    passes to reach tol 1e-4 from 29 to 9 (plain over-relaxation at 1.5: 12); on the dense
    scaling iterations (``log v``) of the MNIST/USPS 2k cross term at relative epsilon 1e-3, the
    iterations from 813 (over-relaxation at 1.8) to 171."""

    def __init__(self, depth: int, weight: Tensor):
        self.depth, self.w = depth, weight.double().sqrt()
        self.X, self.R = [], []

    def reset(self) -> None:
        self.X, self.R = [], []

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


def _solve_online(engine, f, g, a, b, loga, logb, schedule, max_iter, tol, symmetric, warm, accelerate=True,
                  want_tc=False):
    """Log-domain iterations with recomputed cost blocks: one (averaged) update per epsilon
    level, then iterations at the target until the L1 marginal error is below ``tol``.

    One pass over the cost per iteration. Non-symmetric: :meth:`_Engine.fused_pass` (row and
    column updates from one matrix product per block), Anderson-accelerated at the target
    (``accelerate``; the memory is dropped when the error grows); it stops on a pair ``(f, g)``
    whose two marginal errors were both measured (``f = T(g)``: rows exact), and returns its ``<pi,
    C>`` when ``want_tc``. Symmetric: the averaged update ``f <- (f + T(f)) / 2``; it stops on the
    ``f`` whose error was measured. Returns ``f, g, iterations, error, converged, tc`` (tc: NaN
    when not computed). Big problems log each pass with an estimate of the time left."""
    it, err, converged, tc = 0, float("inf"), False, math.nan
    total = len(schedule) - 1 + max_iter
    big = engine.cost.n * engine.cost.m >= PROGRESS_ELEMENTS
    t0, errs, best = time.perf_counter(), [], math.inf
    acc = _Anderson(ANDERSON_DEPTH, b) if accelerate and not symmetric else None
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
                    if err > 2.0 * best:  # the extrapolation went astray: restart from the plain step
                        acc.reset()
                    best = min(best, err)
                    g_next = acc.step(g, g_next)
            f, g = fn, g_next
        it += 1
        if big and at_target:
            errs.append(err)
            _log_progress(it, err, tol, errs, time.perf_counter() - t0)
    if symmetric:
        g = f
    return f, g, it, err, converged, tc


def _log_progress(it: int, err: float, tol: float, errs: list, seconds: float) -> None:
    """One line per full pass of a big problem: the marginal error and, from its recent geometric
    rate of decrease, the passes and seconds left."""
    eta = ""
    if len(errs) >= 3 and errs[-1] < errs[-3]:
        rate = (errs[-1] / errs[-3]) ** 0.5
        left = math.log(tol / errs[-1]) / math.log(rate)
        eta = f", about {left:.0f} passes ({left * seconds / it:.0f} s) left"
    log.info("full pass %d: marginal error %.2e (tol %.0e), %.1f s per pass%s", it, err, tol, seconds / it, eta)


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


@dataclass
class SinkhornResult:
    """Output of :func:`sinkhorn`.

    ``f``, ``g``: dual potentials (detached, cost units). ``transport_cost``: ``<pi, C>`` of the
    entropic coupling (float tensor, detached). ``entropic``: ``OT_eps = <a,f> + <b,g>``
    (detached). ``loss``: a scalar tensor equal to ``entropic`` whose gradient is
    ``sum_ij pi_ij dC_ij`` (envelope theorem). ``marginal_error``: L1 violation of the last
    marginal that was not enforced exactly. ``converged``: ``marginal_error < tol`` with finite
    potentials. ``escalated``: the dense kernel iterations were continued in the log domain.
    """

    f: Tensor
    g: Tensor
    a: Tensor
    b: Tensor
    epsilon: float
    transport_cost: Tensor
    entropic: Tensor
    loss: Tensor
    n_iter: int
    converged: bool
    marginal_error: float
    backend: str
    cost: Cost = field(repr=False)
    escalated: bool = False

    def _log_plan_block(self, i0: int, i1: int, Cb: Tensor) -> Tensor:
        e = self.epsilon
        return (
            (self.f[i0:i1].unsqueeze(1) + self.g.unsqueeze(0) - Cb) / e
            + self.a[i0:i1].log().unsqueeze(1)
            + self.b.log().unsqueeze(0)
        )

    def coupling(self, dense: bool = True, k: int = 10, max_elements: int = 1 << 27) -> Tensor:
        """Rebuild the coupling ``pi`` from the potentials.

        ``dense=True``: the ``(n, m)`` matrix (refused above ``max_elements`` entries).
        ``dense=False``: a sparse COO tensor keeping the ``k`` largest entries of each row.
        """
        n, m = self.cost.n, self.cost.m
        if dense:
            if n * m > max_elements:
                raise ValueError(
                    f"dense coupling would have {n * m:,} entries (> max_elements={max_elements:,}); "
                    "use coupling(dense=False, k=...) or correspondences(k=...)"
                )
            with torch.no_grad():
                return self._log_plan_block(0, n, self.cost.dense()).exp()
        idx, w = self.correspondences(k)
        rows = torch.arange(n, device=idx.device).repeat_interleave(idx.shape[1])
        return torch.sparse_coo_tensor(torch.stack([rows, idx.reshape(-1)]), w.reshape(-1), (n, m)).coalesce()

    def correspondences(self, k: int = 5) -> tuple[Tensor, Tensor]:
        """Top-``k`` target indices per source item and their coupling masses, each ``(n, k)``."""
        n, m = self.cost.n, self.cost.m
        k = min(k, m)
        idx = torch.empty(n, k, dtype=torch.long, device=self.f.device)
        w = torch.empty(n, k, dtype=self.f.dtype, device=self.f.device)
        step = max(1, DEFAULT_BLOCK_ELEMENTS // max(m, 1))
        with torch.no_grad():
            for i0 in range(0, n, step):
                i1 = min(n, i0 + step)
                lp = self._log_plan_block(i0, i1, self.cost.block(i0, i1))
                v, j = lp.topk(k, dim=1)
                idx[i0:i1], w[i0:i1] = j, v.exp()
        return idx, w


def _final_pass(engine: _Engine, f, g, loga, logb, eps, differentiable: bool) -> Tensor:
    """``<pi, C>``; it carries ``pi * dC`` gradients when differentiable (envelope theorem)."""
    cost = engine.cost
    grad = differentiable and torch.is_grad_enabled() and cost.requires_grad

    def contrib(i0, i1, Cb):
        lp = (f[i0:i1].unsqueeze(1) + g.unsqueeze(0) - Cb.detach()) / eps + loga[i0:i1].unsqueeze(1) + logb
        return (exp(lp) * Cb).sum()

    if not grad and engine.kernel is not None:
        with torch.no_grad():
            return engine.kernel.transport_cost(f, g)
    if not grad:
        with torch.no_grad():
            return sum(contrib(i0, i1, Cb) for i0, i1, Cb in engine.blocks())
    small = isinstance(cost, MatrixCost) or cost.n <= engine.step
    total = None
    for i0 in range(0, cost.n, engine.step):
        i1 = min(cost.n, i0 + engine.step)
        if small:
            t = contrib(i0, i1, cost.block(i0, i1))
        else:
            t = checkpoint(lambda i0=i0, i1=i1: contrib(i0, i1, cost.block(i0, i1)), use_reentrant=False)
        total = t if total is None else total + t
    return total


def check_cost(cost: Cost) -> float:
    """``max C``, refusing a cost that is not finite (features too large for the dtype)."""
    cmax = cost.max_value()
    if not math.isfinite(cmax):
        raise ValueError(
            f"the ground cost is not finite (max C = {cmax}) in {cost.dtype}: the features are too large "
            "(their squared distances overflow) or hold NaN/inf; rescale the features (e.g. standardise "
            "them, or divide images by 255) or use float64")
    return cmax


def _not_converged_message(eps: float, it: int, err: float, tol: float, escalated: bool) -> str:
    how = " (dense kernel, then log domain)" if escalated else ""
    return (f"Sinkhorn did not converge{how}: epsilon={eps:.4g} (absolute), {it} iterations, L1 marginal "
            f"error {err:.2e} > tol {tol:.0e}; the value and coupling may be off. Fixes: a larger epsilon, "
            "more iterations (max_iter), or float64 features; strict=True turns this into an error.")


def sinkhorn(
    a: Tensor | None,
    b: Tensor | None,
    cost,
    epsilon: float,
    *,
    max_iter: int = SinkhornConfig.max_iter,
    tol: float = SinkhornConfig.tol,
    eps_scaling: bool = True,
    scaling: float = SinkhornConfig.scaling,
    backend: str = SinkhornConfig.backend,
    symmetric: bool = False,
    differentiable: bool = True,
    max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
    init: tuple[Tensor, Tensor] | None = None,
    level_iter: int = 1,
    overrelax: float = SinkhornConfig.overrelax,
    acceleration: str = SinkhornConfig.acceleration,
    strict: bool = SinkhornConfig.strict,
    transport_cost: bool = True,
) -> SinkhornResult:
    """Entropic OT between weights ``a`` (n,) and ``b`` (m,) for the ground cost ``cost``.

    ``cost``: an ``(n, m)`` tensor or a :class:`~otdata.ot.costs.Cost` (e.g.
    :class:`~otdata.ot.costs.PointCloudCost`). ``a``/``b`` default to uniform.
    ``epsilon``: **absolute** regularisation in cost units (as POT's ``reg``; a relative epsilon is
    resolved by :class:`~otdata.ot.SinkhornConfig`). ``eps_scaling``: anneal from ``max C`` by
    factor ``scaling`` per level before iterating at ``epsilon`` until the L1 marginal error
    is below ``tol`` or ``max_iter`` iterations ran. ``backend``: ``"dense"`` stores the cost
    (no autograd), ``"online"`` recomputes row blocks inside the log-sum-exp (memory O(n+m)),
    ``"auto"`` stores it when it fits in ``max_dense_bytes`` and otherwise, for a
    :class:`~otdata.ot.costs.PointCloudCost` without gradient, takes ``"sparse"`` (a truncated kernel
    whose marginals are certified on the full cost, :mod:`otdata.ot.sparse`). ``symmetric=True`` (``a == b``,
    symmetric cost) uses the averaged symmetric update ``f <- (f + T(f)) / 2``.
    ``level_iter``: iterations per intermediate epsilon level (GeomLoss does one).
    ``acceleration``: of the dense iterations at the target epsilon, ``"anderson"`` (default),
    ``"overrelax"`` (by ``overrelax``, which falls back to ``1`` by itself if the marginal error
    grows) or ``"none"`` (plain Sinkhorn); see :class:`~otdata.ot.SinkhornConfig`.
    ``overrelax``: over-relaxation ``omega`` (``"overrelax"``; the sparse backend's iterations).

    **Convergence is a contract.** A dense solve that does not reach ``tol`` (or whose potentials
    are not finite) is continued in the log domain on the same stored cost, which cannot
    underflow. If that fails too, the result has ``converged=False`` and a
    :class:`ConvergenceWarning` names epsilon, the iterations, the marginal error and the fixes;
    ``strict=True`` raises :class:`ConvergenceError` instead. A cost that is not finite is refused
    at once.

    ``transport_cost=False`` skips the final pass over the coupling (``transport_cost`` is then NaN
    and ``loss`` carries no gradient): for callers that only need the potentials and the entropic
    value, such as a flow step that writes its gradient out from the plan itself.

    Non-symmetric potentials are returned in the gauge ``<a, f> = <b, g>`` (``f + c, g - c`` is
    the same solution for any ``c``). Returns a :class:`SinkhornResult`.
    """
    cost = _as_cost(cost)
    if acceleration not in ACCELERATIONS:
        raise ValueError(f"acceleration must be one of {ACCELERATIONS}, got {acceleration!r}")
    if epsilon <= 0 or not math.isfinite(epsilon):
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon}")
    n, m = cost.n, cost.m
    if n == 0 or m == 0:
        raise ValueError(f"empty problem: n={n}, m={m}")
    a = _uniform(n, cost) if a is None else a.to(cost.dtype).detach()
    b = _uniform(m, cost) if b is None else b.to(cost.dtype).detach()
    if a.shape != (n,) or b.shape != (m,):
        raise ValueError(f"weights must have shapes ({n},) and ({m},), got {tuple(a.shape)}, {tuple(b.shape)}")
    if symmetric and n != m:
        raise ValueError("symmetric=True needs a square cost")
    loga, logb = a.log(), b.log()
    grad_pass = differentiable and torch.is_grad_enabled() and cost.requires_grad
    want_tc = transport_cost and not grad_pass  # <pi, C> from the last pass, no pass of its own

    with torch.no_grad():
        cmax = check_cost(cost)
        engine = _Engine(cost, backend, max_dense_bytes, block_elements)
        schedule = epsilon_schedule(cmax, epsilon, scaling) if eps_scaling else [epsilon]
        if init is not None:
            f0, g0 = init[0].detach().to(cost.dtype).clone(), init[1].detach().to(cost.dtype).clone()
        else:
            f0 = torch.zeros(n, dtype=cost.dtype, device=cost.device)
            g0 = torch.zeros(m, dtype=cost.dtype, device=cost.device)
        escalated, tc_known = False, None
        single = n * m <= SINGLE_THREAD_ELEMENTS
        if engine.backend == "dense":
            kern = _DenseKernel(engine.C, a, b, symmetric, block_elements)
            # vector updates on one thread always; big mat-vecs keep the caller's threads
            kern.mv_threads = 1 if single else torch.get_num_threads()
            with single_thread(True):
                f, g, it, err, converged = kern.solve(f0, g0, schedule, max_iter, tol, level_iter, overrelax,
                                                      acceleration)
            finite = bool(torch.isfinite(f).all() and torch.isfinite(g).all())
            if converged and finite:
                engine.kernel = kern
            else:  # continue in the log domain on the stored cost (no kernel to underflow)
                del kern
                escalated = True
                start, sched = ((f, g), [epsilon]) if finite else ((f0, g0), schedule)
                with single_thread(single):
                    f, g, it2, err, converged, _ = _solve_online(engine, *start, a, b, loga, logb, sched, max_iter,
                                                                 tol, symmetric, True, False)
                it += it2
        elif engine.backend == "sparse":
            with single_thread(single):
                f, g, it, err, converged, tc_known, _ = solve_sparse(cost, a, b, epsilon, symmetric, max_iter, tol,
                                                                     block_elements, overrelax, log=log.info)
                if not converged:  # the truncation is not certified: full passes, from its potentials
                    escalated, tc_known = True, None
                    finite = bool(torch.isfinite(f).all() and torch.isfinite(g).all())
                    start, sched = ((f, g), [epsilon]) if finite else ((f0, g0), schedule)
                    f, g, it2, err, converged, tc = _solve_online(engine, *start, a, b, loga, logb, sched, max_iter,
                                                                  tol, symmetric, True, True, want_tc)
                    tc_known = tc if math.isfinite(tc) else None
                    it += it2
        else:
            with single_thread(single):
                f, g, it, err, converged, tc = _solve_online(engine, f0, g0, a, b, loga, logb, schedule, max_iter,
                                                             tol, symmetric, init is not None, True, want_tc)
                tc_known = tc if math.isfinite(tc) else None
        converged = converged and bool(torch.isfinite(f).all() and torch.isfinite(g).all())
        if not symmetric:  # fix the gauge (f + c, g - c) so that <a, f> = <b, g>
            c = 0.5 * ((b * g).sum() - (a * f).sum())
            f, g = f + c, g - c
        entropic = (a * f).sum() + (b * g).sum()

    if not converged:
        msg = _not_converged_message(epsilon, it, err, tol, escalated)
        if strict:
            raise ConvergenceError(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    if not transport_cost:
        tc = torch.tensor(float("nan"), dtype=cost.dtype, device=cost.device)
    elif tc_known is not None and not grad_pass:
        tc = torch.tensor(tc_known, dtype=cost.dtype, device=cost.device)  # from the certificate or last pass
    else:
        with single_thread(n * m <= SINGLE_THREAD_ELEMENTS):
            tc = _final_pass(engine, f, g, loga, logb, epsilon, differentiable)
    loss = entropic + (tc - tc.detach()) if tc.requires_grad else entropic.clone()
    return SinkhornResult(
        f=f, g=g, a=a, b=b, epsilon=float(epsilon), transport_cost=tc.detach(), entropic=entropic,
        loss=loss, n_iter=it, converged=converged, marginal_error=err, backend=engine.backend, cost=cost,
        escalated=escalated,
    )
