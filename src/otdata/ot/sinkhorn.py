"""The front door of entropic OT: :func:`sinkhorn` (validation, backend choice, escalation, result).

The iterations themselves live in :mod:`otdata.ot.engine` (one scaling loop fed by the dense and
sparse kernels, log-domain passes over cost blocks, Anderson acceleration); this module picks the
backend for a problem, runs it, continues a solve that did not converge in the log domain, and
returns a :class:`SinkhornResult` that says whether it converged.

Conventions (all costs are ground costs ``C``, marginals ``a``, ``b`` sum to one):

* **transport cost** ``<pi, C> = sum_ij pi_ij C_ij`` of the entropic coupling
  ``pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``. As ``eps -> 0`` it tends to exact OT
  (``ot.emd2``). This is :attr:`SinkhornResult.transport_cost`.
* **entropic objective** ``OT_eps(a, b) = min_pi <pi, C> + eps KL(pi | a x b)``, which at the
  optimum equals the dual value ``<a, f> + <b, g>``. This is :attr:`SinkhornResult.entropic`
  and the differentiable :attr:`SinkhornResult.loss`.
* **Sinkhorn divergence** ``S_eps = OT_eps(a, b) - OT_eps(a, a)/2 - OT_eps(b, b)/2``
  (:func:`otdata.ot.divergence.sinkhorn_divergence`); ``S_eps(a, a) = 0``.

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

import math
import warnings
import logging
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ._exp import exp
from ._threads import SINGLE_THREAD_ELEMENTS, single_thread
from .config import ACCELERATIONS, BACKENDS, SinkhornConfig
from .costs import Cost, MatrixCost, PointCloudCost
from .engine.dense import DenseKernel
from .engine.online import RowBlocks, solve_online
from .engine.scaling import epsilon_schedule
from .engine.sparse import solve_sparse

log = logging.getLogger(__name__)

__all__ = ["ConvergenceError", "ConvergenceWarning", "SinkhornResult", "check_cost", "epsilon_schedule",
           "sinkhorn"]


class ConvergenceWarning(UserWarning):
    """A Sinkhorn solve stopped before reaching its tolerance: its numbers may be off."""


class ConvergenceError(RuntimeError):
    """A Sinkhorn solve did not converge and ``strict=True`` was asked for."""


#: elements per row block (rows * m) for the blocked log-sum-exp.
DEFAULT_BLOCK_ELEMENTS = 1 << 23

#: the settings of a solve that :func:`sinkhorn` reads from its :class:`SinkhornConfig` (epsilon is
#: given absolute, and ``warm_tol`` is the caller's ``tol`` for warm-started repeated solves).
SOLVE_SETTINGS = tuple(f.name for f in fields(SinkhornConfig) if f.name not in ("epsilon", "relative", "warm_tol"))


def _as_cost(cost) -> Cost:
    if isinstance(cost, Cost):
        return cost
    if isinstance(cost, Tensor):
        return MatrixCost(cost)
    raise TypeError(f"cost must be a torch.Tensor (n, m) or an otdata.ot.Cost, got {type(cost).__name__}")


def _uniform(n: int, like: Cost) -> Tensor:
    return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)


def choose_backend(cost: Cost, backend: str, max_dense_bytes: int) -> str:
    """``"auto"``: store the cost when it is a matrix or fits in ``max_dense_bytes``; otherwise a
    truncated kernel (``"sparse"``) for a point cloud without gradient, else ``"online"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    nbytes = cost.n * cost.m * torch.tensor([], dtype=cost.dtype).element_size()
    if backend == "auto":
        if isinstance(cost, MatrixCost) or nbytes <= max_dense_bytes:
            return "dense"
        return "sparse" if isinstance(cost, PointCloudCost) and not cost.requires_grad else "online"
    if backend == "sparse" and not isinstance(cost, PointCloudCost):
        raise ValueError("backend='sparse' needs a PointCloudCost (it subsamples rows and columns)")
    return backend


def _settings(config: SinkhornConfig | None, overrides: dict) -> SinkhornConfig:
    """The solve's settings: ``config`` (default :class:`SinkhornConfig`) with ``overrides``."""
    unknown = sorted(set(overrides) - set(SOLVE_SETTINGS))
    if unknown:
        raise TypeError(f"sinkhorn() got unknown setting(s) {unknown}; the settings are {list(SOLVE_SETTINGS)} "
                        "(epsilon is the fourth argument, absolute)")
    config = SinkhornConfig() if config is None else config
    if not isinstance(config, SinkhornConfig):
        raise TypeError(f"config must be a SinkhornConfig, got {type(config).__name__}")
    return config.with_(**overrides) if overrides else config


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


def _final_pass(engine: RowBlocks, kernel: DenseKernel | None, f, g, loga, logb, eps, differentiable: bool) -> Tensor:
    """``<pi, C>``; it carries ``pi * dC`` gradients when differentiable (envelope theorem)."""
    cost = engine.cost
    grad = differentiable and torch.is_grad_enabled() and cost.requires_grad

    def contrib(i0, i1, Cb):
        lp = (f[i0:i1].unsqueeze(1) + g.unsqueeze(0) - Cb.detach()) / eps + loga[i0:i1].unsqueeze(1) + logb
        return (exp(lp) * Cb).sum()

    if not grad and kernel is not None:
        with torch.no_grad():
            return kernel.transport_cost(f, g)
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
    epsilon: float | None = None,
    config: SinkhornConfig | None = None,
    *,
    symmetric: bool = False,
    differentiable: bool = True,
    init: tuple[Tensor, Tensor] | None = None,
    eps_scaling: bool = True,
    level_iter: int = 1,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
    transport_cost: bool = True,
    **settings,
) -> SinkhornResult:
    """Entropic OT between weights ``a`` (n,) and ``b`` (m,) for the ground cost ``cost``.

    ``cost``: an ``(n, m)`` tensor or a :class:`~otdata.ot.costs.Cost` (e.g.
    :class:`~otdata.ot.costs.PointCloudCost`). ``a``/``b`` default to uniform.
    ``epsilon``: **absolute** regularisation in cost units (as POT's ``reg``); ``None`` resolves
    ``config``'s (relative) epsilon on this cost, :meth:`SinkhornConfig.absolute_epsilon`.
    ``config``: the :class:`~otdata.ot.SinkhornConfig` of the solve (``max_iter``, ``tol``,
    ``scaling``, ``acceleration``, ``overrelax``, ``backend``, ``max_dense_bytes``, ``strict``);
    any of them may also be given as a keyword, which overrides the config's.

    ``eps_scaling``: anneal from ``max C`` by factor ``scaling`` per level (``level_iter``
    iterations each) before iterating at ``epsilon`` until the L1 marginal error is below ``tol``
    or ``max_iter`` iterations ran. ``backend``: ``"dense"`` stores the cost (no autograd),
    ``"online"`` recomputes row blocks of ``block_elements`` entries inside the log-sum-exp
    (memory O(n+m)), ``"sparse"`` truncates the kernel and certifies its marginals on the full cost
    (:mod:`otdata.ot.engine.sparse`); ``"auto"``: :func:`choose_backend`. ``symmetric=True``
    (``a == b``, symmetric cost) uses the averaged symmetric update ``f <- (f + T(f)) / 2``.
    ``acceleration`` (dense iterations at the target epsilon): ``"anderson"``, ``"overrelax"`` (by
    ``overrelax``, falling back to 1 by itself if the marginal error grows) or ``"none"``.
    ``init``: warm-start potentials ``(f, g)``.

    **Convergence is a contract.** A dense or sparse solve that does not reach ``tol`` (or whose
    potentials are not finite) is continued in the log domain, which cannot underflow. If that
    fails too, the result has ``converged=False`` and a :class:`ConvergenceWarning` names epsilon,
    the iterations, the marginal error and the fixes; ``strict=True`` raises
    :class:`ConvergenceError` instead. A cost that is not finite is refused at once.

    ``transport_cost=False`` skips the final pass over the coupling (``transport_cost`` is then NaN
    and ``loss`` carries no gradient): for callers that only need the potentials and the entropic
    value, such as a flow step that writes its gradient out from the plan itself.

    Non-symmetric potentials are returned in the gauge ``<a, f> = <b, g>`` (``f + c, g - c`` is
    the same solution for any ``c``). Returns a :class:`SinkhornResult`.
    """
    cfg = _settings(config, settings)
    cost = _as_cost(cost)
    if cfg.acceleration not in ACCELERATIONS:
        raise ValueError(f"acceleration must be one of {ACCELERATIONS}, got {cfg.acceleration!r}")
    n, m = cost.n, cost.m
    if n == 0 or m == 0:
        raise ValueError(f"empty problem: n={n}, m={m}")
    a = _uniform(n, cost) if a is None else a.to(cost.dtype).detach()
    b = _uniform(m, cost) if b is None else b.to(cost.dtype).detach()
    if a.shape != (n,) or b.shape != (m,):
        raise ValueError(f"weights must have shapes ({n},) and ({m},), got {tuple(a.shape)}, {tuple(b.shape)}")
    if epsilon is None:
        epsilon = cfg.absolute_epsilon(cost.mean_value(a, b))
    if epsilon <= 0 or not math.isfinite(epsilon):
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon}")
    if symmetric and n != m:
        raise ValueError("symmetric=True needs a square cost")
    grad_pass = differentiable and torch.is_grad_enabled() and cost.requires_grad
    problem = _Problem(cost, a, b, float(epsilon), symmetric, cfg, block_elements, level_iter,
                       want_tc=transport_cost and not grad_pass)  # <pi, C> from the last pass
    with torch.no_grad():
        f, g, it, err, converged, escalated, tc_known, engine, kernel = problem.run(init, eps_scaling)
        converged = converged and bool(torch.isfinite(f).all() and torch.isfinite(g).all())
        if not symmetric:  # fix the gauge (f + c, g - c) so that <a, f> = <b, g>
            c = 0.5 * ((b * g).sum() - (a * f).sum())
            f, g = f + c, g - c
        entropic = (a * f).sum() + (b * g).sum()

    if not converged:
        msg = _not_converged_message(epsilon, it, err, cfg.tol, escalated)
        if cfg.strict:
            raise ConvergenceError(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    if not transport_cost:
        tc = torch.tensor(float("nan"), dtype=cost.dtype, device=cost.device)
    elif tc_known is not None and not grad_pass:
        tc = torch.tensor(tc_known, dtype=cost.dtype, device=cost.device)  # from the certificate or last pass
    else:
        with single_thread(n * m <= SINGLE_THREAD_ELEMENTS):
            tc = _final_pass(engine, kernel, f, g, a.log(), b.log(), epsilon, differentiable)
    loss = entropic + (tc - tc.detach()) if tc.requires_grad else entropic.clone()
    return SinkhornResult(
        f=f, g=g, a=a, b=b, epsilon=float(epsilon), transport_cost=tc.detach(), entropic=entropic,
        loss=loss, n_iter=it, converged=converged, marginal_error=err, backend=problem.backend, cost=cost,
        escalated=escalated,
    )


class _Problem:
    """One solve: the backend chosen for the cost, its run and, if it did not converge, its
    continuation in the log domain (escalation)."""

    def __init__(self, cost: Cost, a: Tensor, b: Tensor, eps: float, symmetric: bool, cfg: SinkhornConfig,
                 block_elements: int, level_iter: int, want_tc: bool):
        self.cost, self.a, self.b, self.eps, self.symmetric, self.cfg = cost, a, b, eps, symmetric, cfg
        self.loga, self.logb = a.log(), b.log()
        self.block_elements, self.level_iter, self.want_tc = block_elements, level_iter, want_tc
        self.single = cost.n * cost.m <= SINGLE_THREAD_ELEMENTS
        self.backend = choose_backend(cost, cfg.backend, cfg.max_dense_bytes)

    def run(self, init, eps_scaling: bool):
        """Returns ``f, g, iterations, error, converged, escalated, tc, engine, kernel`` (``tc``: the
        transport cost when a pass computed it, else ``None``; ``kernel``: the dense kernel of the
        final potentials, when the dense backend converged)."""
        cost, cfg = self.cost, self.cfg
        cmax = check_cost(cost)
        engine = RowBlocks(cost, self.block_elements, store=self.backend == "dense")
        self.schedule = epsilon_schedule(cmax, self.eps, cfg.scaling) if eps_scaling else [self.eps]
        if init is not None:
            f0, g0 = init[0].detach().to(cost.dtype).clone(), init[1].detach().to(cost.dtype).clone()
        else:
            f0 = torch.zeros(cost.n, dtype=cost.dtype, device=cost.device)
            g0 = torch.zeros(cost.m, dtype=cost.dtype, device=cost.device)
        if self.backend == "dense":
            return self._dense(engine, f0, g0)
        if self.backend == "sparse":
            return self._sparse(engine, f0, g0)
        with single_thread(self.single):
            f, g, it, err, converged, tc = self._online(engine, f0, g0, self.schedule, init is not None, True)
        return f, g, it, err, converged, False, (tc if math.isfinite(tc) else None), engine, None

    def _online(self, engine, f, g, schedule, warm: bool, accelerate: bool, want_tc: bool | None = None):
        return solve_online(engine, f, g, self.a, self.b, self.loga, self.logb, schedule, self.cfg.max_iter,
                            self.cfg.tol, self.symmetric, warm, accelerate,
                            self.want_tc if want_tc is None else want_tc)

    def _escalate(self, engine, f, g, f0, g0, it, accelerate: bool, want_tc: bool):
        """Continue in the log domain: from ``(f, g)`` at the target when they are finite, else
        from the start with the whole schedule."""
        finite = bool(torch.isfinite(f).all() and torch.isfinite(g).all())
        start, sched = ((f, g), [self.eps]) if finite else ((f0, g0), self.schedule)
        f, g, it2, err, converged, tc = self._online(engine, *start, sched, True, accelerate, want_tc)
        return f, g, it + it2, err, converged, True, (tc if math.isfinite(tc) else None), engine, None

    def _dense(self, engine, f0, g0):
        kern = DenseKernel(engine.C, self.a, self.b, self.symmetric, self.block_elements)
        # vector updates on one thread always; big mat-vecs keep the caller's threads
        kern.mv_threads = 1 if self.single else torch.get_num_threads()
        cfg = self.cfg
        with single_thread(True):
            f, g, it, err, converged = kern.solve(f0, g0, self.schedule, cfg.max_iter, cfg.tol, self.level_iter,
                                                  cfg.overrelax, cfg.acceleration)
        if converged and bool(torch.isfinite(f).all() and torch.isfinite(g).all()):
            return f, g, it, err, converged, False, None, engine, kern
        del kern  # continue in the log domain on the stored cost (no kernel to underflow)
        with single_thread(self.single):
            out = self._escalate(engine, f, g, f0, g0, it, False, False)
        return out[:6] + (None, engine, None)

    def _sparse(self, engine, f0, g0):
        cfg = self.cfg
        with single_thread(self.single):
            f, g, it, err, converged, tc, _ = solve_sparse(
                self.cost, self.a, self.b, self.eps, self.symmetric, cfg.max_iter, cfg.tol, self.block_elements,
                cfg.overrelax, log=log.info, coarse=coarse_solve)
            if converged:
                return f, g, it, err, True, False, tc, engine, None
            # the truncation is not certified: full passes, from its potentials
            return self._escalate(engine, f, g, f0, g0, it, True, self.want_tc)


def coarse_solve(a: Tensor, b: Tensor, cost: Cost, eps: float, symmetric: bool) -> SinkhornResult:
    """The dense solve of the sparse backend's subsample problem (:mod:`otdata.ot.engine.sparse`)."""
    return sinkhorn(a, b, cost, eps, symmetric=symmetric, differentiable=False, tol=1e-3, strict=False,
                    backend="dense")


