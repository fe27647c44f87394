"""OTDD as a flow objective, assembled from the OT engine in :mod:`otdata.ot`.

The flow needs a few things a one-shot distance does not: target statistics and the target self-term
computed once; source class statistics that are detached (``"fixed"``), differentiable
(``"attached"``) or free parameters (``"joint"``); and a label cost modified by a class
correspondence; and Sinkhorn warm-started from the previous step. This module builds exactly that on
top of :func:`otdata.ot.sinkhorn`, :class:`otdata.ot.PointCloudCost` and the Bures-Wasserstein
factors of :mod:`otdata.ot.gaussian` (no Sinkhorn or Bures solver of its own); at step 0 its value
equals :class:`otdata.distance.DatasetDistance`'s debiased divergence (tested).
Defaults differ from a one-shot distance: ``max_iter=100``, ``tol=1e-3`` per step, because the
warm start carries the potentials from step to step. The only local piece is a gradient-safe nuclear-norm
cross term (eigenvalues below a relative floor get no gradient, which avoids ``d sqrt(0)``).

Value: ``S_eps((X, y), target)`` with ground cost ``|x - x'|^p + W[y, y']``, ``W`` the label
distance (``W_2^2`` between class Gaussians, or squared mean distances). With a correspondence
``corr``, ``W'[c, c'] = W[c, c'] + penalty * [c' != corr[c]]`` in the source-target term, so the
entropic coupling only links class ``c`` with class ``corr[c]``; ``penalty`` defaults to ten times
the largest unpenalised cost.
"""

from __future__ import annotations

import torch
from torch import Tensor

from otdata.ot import MatrixCost, PointCloudCost, covariance_factor, sinkhorn
from otdata.ot.gaussian import bures_cross_term

__all__ = ["OTDDEngine", "class_factors", "label_cost", "source_stats"]

LABEL_DISTANCES = ("gaussian", "means")


def _cross_safe(F1: Tensor, F2: Tensor) -> Tensor:
    K = F1 @ F2.T
    G = K @ K.T if K.shape[0] <= K.shape[1] else K.T @ K
    w = torch.linalg.eigvalsh(0.5 * (G + G.T))
    floor = 1e-10 * w.detach().abs().max().clamp_min(1e-30)
    return w.clamp_min(floor).sqrt().sum()


def class_factors(X: Tensor, yi: Tensor, C: int) -> tuple[Tensor, list[Tensor], Tensor]:
    """Per-class means ``(C, d)``, covariance factors (``F^T F = cov``, low rank when
    ``n_c <= d``) and traces ``(C,)``; differentiable w.r.t. ``X``."""
    means, factors, traces = [], [], []
    for k in range(C):
        Xk = X[yi == k]
        m = Xk.mean(0)
        F, tr = covariance_factor(Xk, m)
        means.append(m)
        factors.append(F)
        traces.append(tr)
    return torch.stack(means), factors, torch.stack(traces)


class _one_thread:
    """Run small batched eigen-solves single-threaded: for (few hundred)^2 matrices LAPACK's thread
    start-up dominates, and on a busy machine multi-threaded ``eigvalsh`` can be 100x slower."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


def label_cost(stats1, stats2, kind: str, symmetric: bool = False) -> Tensor:
    """``(C1, C2)`` label-distance matrix from ``(means, factors, traces)`` pairs."""
    with _one_thread():
        return _label_cost(stats1, stats2, kind, symmetric)


def _label_cost(stats1, stats2, kind, symmetric):
    mu1, F1, tr1 = stats1
    mu2, F2, tr2 = stats2
    M = ((mu1.unsqueeze(1) - mu2.unsqueeze(0)) ** 2).sum(-1)
    if kind == "means":
        return M
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in [mu1, tr1, mu2, tr2, *F1, *F2])
    cross_fn = _cross_safe if grad else bures_cross_term
    C1, C2 = len(F1), len(F2)
    rows = []
    for i in range(C1):
        row = []
        for j in range(C2):
            if symmetric and j < i:
                row.append(None)
            else:
                row.append(cross_fn(F1[i], F2[j]))
        rows.append(row)
    if symmetric:
        for i in range(C1):
            for j in range(i):
                rows[i][j] = rows[j][i]
    cross = torch.stack([torch.stack(r) for r in rows])
    W = (M + tr1.unsqueeze(1) + tr2.unsqueeze(0) - 2 * cross).clamp_min(0.0)
    if symmetric:
        W = W * (1 - torch.eye(C1, dtype=W.dtype, device=W.device))  # exact zeros on the diagonal
    return W


def source_stats(X: Tensor, yi: Tensor, C: int, term=None):
    """Means and a list of covariance factors of the source classes (initial ``"joint"`` params)."""
    with torch.no_grad():
        mu, F, _ = class_factors(X.detach(), yi, C)
    return mu, F


class OTDDEngine:
    """OTDD between moving particles and a fixed target (see module docstring).

    Args:
        label_distance: ``"gaussian"`` or ``"means"``.
        epsilon: absolute entropic regularisation (cost units, see :mod:`otdata.ot.sinkhorn`).
        p: feature cost exponent (``|x - x'|^p``).
        debiased: Sinkhorn divergence (``True``) or plain entropic OT.
        penalty: off-correspondence label-cost penalty (``None``: automatic).
        lambda_x, lambda_y: weights of the feature and label parts of the ground cost.
        max_iter, tol, scaling, backend: forwarded to :func:`otdata.ot.sinkhorn`.
        dense_elements: build the cost matrix once per step when ``n * m`` is at most this.
        warm_start: start each step's Sinkhorn from the previous step's potentials (kept in the
            flow state's cache, hence in checkpoints) and skip epsilon-scaling; particles move
            little per step, so this cuts the iterations by an order of magnitude.
    """

    def __init__(self, label_distance: str = "gaussian", epsilon: float = 0.1, p: int = 2,
                 debiased: bool = True, penalty: float | None = None, lambda_x: float = 1.0,
                 lambda_y: float = 1.0, max_iter: int = 100, tol: float = 1e-3,
                 scaling: float = 0.5, backend: str = "auto", warm_start: bool = True,
                 dense_elements: int = 1 << 25):
        if label_distance not in LABEL_DISTANCES:
            raise ValueError(f"label_distance={label_distance!r} is not supported in flows; use one "
                             f"of {LABEL_DISTANCES}")
        self.kind = label_distance
        self.epsilon = float(epsilon)
        self.p = p
        self.debiased = debiased
        self.penalty = penalty
        self.lambda_x, self.lambda_y = float(lambda_x), float(lambda_y)
        self.sk = dict(max_iter=max_iter, tol=tol, scaling=scaling, backend=backend)
        self.warm_start = warm_start
        self.dense_elements = int(dense_elements)

    # -- target -----------------------------------------------------------------------------------

    def bind_target(self, Xt: Tensor, yt: Tensor) -> None:
        self.Xt = Xt
        self.tclasses, self.tyi, self.tcounts = torch.unique(yt, sorted=True, return_inverse=True,
                                                             return_counts=True)
        self.tpos = {int(c): k for k, c in enumerate(self.tclasses.tolist())}
        with torch.no_grad():
            self.tstats = class_factors(Xt, self.tyi, len(self.tclasses))
            self.W_tt = label_cost(self.tstats, self.tstats, self.kind, symmetric=True)
            self.yy = None
            if self.debiased:
                cost = PointCloudCost(Xt, Xt, self.p, self.lambda_x, self.W_tt, self.tyi, self.tyi,
                                      self.lambda_y)
                self.yy = sinkhorn(None, None, cost, self.epsilon, symmetric=True,
                                   differentiable=False, **self.sk).loss.detach()

    # -- source -----------------------------------------------------------------------------------

    def label_distances(self, X: Tensor, y: Tensor) -> Tensor:
        """``(C_src, C_tgt)`` label distances from ``(X, y)`` to the target (no grad)."""
        _, yi = torch.unique(y, sorted=True, return_inverse=True)
        with torch.no_grad():
            s = class_factors(X.to(self.Xt.dtype), yi, int(yi.max()) + 1)
            return label_cost(s, self.tstats, self.kind)

    def _source_costs(self, state, update_every: int):
        C = len(state.classes)
        if state.labels == "joint":
            lp = state.label_params
            F = list(lp["factors"])
            tr = torch.stack([(f * f).sum() for f in F])
            s = (lp["means"], F, tr)
            return label_cost(s, self.tstats, self.kind), label_cost(s, s, self.kind, symmetric=True)
        if state.labels == "attached":
            s = class_factors(state.X, state.yi, C)
            return label_cost(s, self.tstats, self.kind), label_cost(s, s, self.kind, symmetric=True)
        cache = state.cache
        last = cache.get("otdd_step")
        if last is None or state.step - last >= update_every or state.step < last:
            with torch.no_grad():
                s = class_factors(state.X.detach(), state.yi, C)
                cache["otdd_W_st"] = label_cost(s, self.tstats, self.kind)
                cache["otdd_W_ss"] = label_cost(s, s, self.kind, symmetric=True)
            cache["otdd_step"] = state.step
        return cache["otdd_W_st"], cache["otdd_W_ss"]

    def _penalise(self, W_st: Tensor, state, X: Tensor) -> Tensor:
        corr = state.correspondence
        if corr is None:
            return W_st
        mask = torch.ones_like(W_st)
        for i, c in enumerate(state.classes.tolist()):
            mask[i, self.tpos[corr[c]]] = 0.0
        pen = self.penalty
        if pen is None:
            with torch.no_grad():
                base = PointCloudCost(X.detach(), self.Xt, self.p, self.lambda_x, W_st.detach(),
                                      state.yi, self.tyi, self.lambda_y).max_value()
            pen = 10.0 * base
        return W_st + pen * mask

    def _dense(self, cost: PointCloudCost):
        """Build the cost matrix once per step (one autograd-tracked matmul) when it is small
        enough; the solver then never recomputes it. Large problems stay blocked/online."""
        if cost.n * cost.m <= self.dense_elements:
            return MatrixCost(cost.block(0, cost.n))
        return cost

    def value(self, state, label_update_every: int = 1) -> Tensor:
        X = state.X
        W_st, W_ss = self._source_costs(state, label_update_every)
        W_st = self._penalise(W_st, state, X)
        xt = self.Xt.to(X.dtype)
        c_xy = self._dense(PointCloudCost(X, xt, self.p, self.lambda_x, W_st, state.yi, self.tyi,
                                          self.lambda_y))
        cache = state.cache
        warm = self.warm_start and "otdd_f_xy" in cache and cache["otdd_f_xy"].shape[0] == X.shape[0]
        kw = dict(self.sk)
        xy = sinkhorn(None, None, c_xy, self.epsilon,
                      init=(cache["otdd_f_xy"], cache["otdd_g_xy"]) if warm else None,
                      eps_scaling=not warm, **kw)
        if self.warm_start:
            cache["otdd_f_xy"], cache["otdd_g_xy"] = xy.f, xy.g
        if not self.debiased:
            return xy.loss
        c_xx = self._dense(PointCloudCost(X, X, self.p, self.lambda_x, W_ss, state.yi, state.yi,
                                          self.lambda_y))
        xx = sinkhorn(None, None, c_xx, self.epsilon, symmetric=True,
                      init=(cache["otdd_f_xx"], cache["otdd_f_xx"]) if warm else None,
                      eps_scaling=not warm, **kw)
        if self.warm_start:
            cache["otdd_f_xx"] = xx.f
        # Sinkhorn divergence S = OT(a,b) - OT(a,a)/2 - OT(b,b)/2, target self-term precomputed
        return xy.loss - 0.5 * xx.loss - 0.5 * self.yy.to(X.dtype)
