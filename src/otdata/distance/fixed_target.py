"""The OTDD from a moving labeled sample to a fixed target, evaluated again and again.

A gradient flow evaluates ``OTDD((X_t, y), target)`` at every step while only ``X_t`` changes. This is
the same :class:`~otdata.distance.DatasetDistance` — its class statistics (:mod:`.stats`), label
distances (:mod:`.labels`), Sinkhorn settings (:class:`~otdata.ot.SinkhornConfig`) and debiasing —
with what repetition allows on top:

* the target is prepared once (statistics, target-target label distances) and its debiasing
  self-term ``OT_eps(target, target)`` is solved once per target weighting;
* the absolute epsilon is resolved once, from the first source's cost scale, so every step solves
  the same problem family (a relative epsilon that moved with the particles would change the
  objective under them);
* Sinkhorn is warm-started from the previous step's potentials (:class:`WarmStart`, which
  checkpoints save and restore), and source label distances are refreshed every
  ``label_update_every`` steps for ``labels="fixed"``.

Source label handling (``labels``): ``"fixed"`` (statistics recomputed without gradient),
``"attached"`` (gradient through the class means/covariances) or ``"joint"`` (free parameters given
in ``label_params``). A class ``correspondence`` ``{source_label: target_label}`` adds ``penalty``
to every other class pair of the label cost, so class ``c`` is only transported onto ``corr[c]``
(``penalty=None``: ten times the largest unpenalised cost); each target class then carries the mass
of the source classes sent to it.

For ``p = 2`` and problems whose cost matrices fit (``dense_elements``) a step needs two Gram
matrices, ``X Y^T`` and ``X X^T``: they give the feature costs, the ``"fixed"`` gaussian label costs
(class blocks double-centred) and, with the couplings, the particle gradient
``2 (r_i x_i - (pi Y)_i)`` written out (no autograd graph over ``n x m`` matrices). Other ``p`` or
larger problems take the general path (autograd through the cost).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from otdata.ot._exp import exp_
from otdata.ot.costs import MatrixCost, PointCloudCost
from otdata.ot.divergence import debias
from otdata.ot.gaussian import bures_cross_terms_gram, bures_from_parts
from otdata.ot.sinkhorn import sinkhorn

from .labels import label_distances_from_stats
from .otdd import DatasetDistance
from .stats import ClassStats, class_stats, class_sums

__all__ = ["FixedTargetOTDD", "WarmStart", "FLOW_LABEL_DISTANCES"]

FLOW_LABEL_DISTANCES = ("gaussian", "means")


@dataclass
class WarmStart:
    """What one evaluation hands to the next: the absolute epsilon fixed at the first call, the
    Sinkhorn potentials of the cross and source self terms, and the ``"fixed"`` label costs with the
    step they were computed at. Plain tensors and numbers only (checkpoints load it safely)."""

    epsilon: float | None = None
    f_xy: Tensor | None = None
    g_xy: Tensor | None = None
    f_xx: Tensor | None = None
    W_st: Tensor | None = None
    W_ss: Tensor | None = None
    labels_step: int | None = None

    def state_dict(self) -> dict:
        return {k: (v.detach().cpu().clone() if isinstance(v, Tensor) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_state_dict(cls, d: dict) -> "WarmStart":
        return cls(**d)


def _stats_from_params(params: dict, classes: Tensor, counts: Tensor) -> ClassStats:
    F = list(params["factors"])
    return ClassStats(classes=classes, counts=counts, means=params["means"], factors=F,
                      traces=torch.stack([(f * f).sum() for f in F]))


class FixedTargetOTDD:
    """OTDD between moving particles and a fixed target (see the module docstring).

    Args:
        distance: the :class:`DatasetDistance` whose definition is evaluated (label distance,
            ``p``, debiasing, weights, solver settings); ``label_distance`` must be ``"gaussian"``
            or ``"means"``.
        penalty: off-correspondence label-cost penalty (``None``: automatic).
        label_update_every: ``labels="fixed"``: refresh the source label costs every k steps.
        warm_start: start each solve from the previous potentials, without epsilon-scaling.
        dense_elements: take the Gram-matrix path when ``n * max(n, m)`` is at most this.
    """

    def __init__(self, distance: DatasetDistance, penalty: float | None = None, label_update_every: int = 1,
                 warm_start: bool = True, dense_elements: int = 1 << 25):
        if distance.label_distance not in FLOW_LABEL_DISTANCES:
            raise ValueError(f"label_distance={distance.label_distance!r} is not supported for a moving "
                             f"source; use one of {FLOW_LABEL_DISTANCES}")
        self.dd = distance
        self.kind, self.p, self.debiased = distance.label_distance, distance.p, distance.debiased
        self.lambda_x, self.lambda_y = distance.lambda_x, distance.lambda_y
        self.solver = distance.solver
        self.penalty = penalty
        self.label_update_every = max(1, int(label_update_every))
        self.warm_start = warm_start
        self.dense_elements = int(dense_elements)
        self.warm = WarmStart()

    # -- target -----------------------------------------------------------------------------------

    def bind(self, Xt: Tensor, yt: Tensor) -> "FixedTargetOTDD":
        self.Xt = Xt
        self.tclasses, self.tyi, self.tcounts = torch.unique(yt, sorted=True, return_inverse=True,
                                                             return_counts=True)
        self.tpos = {int(c): k for k, c in enumerate(self.tclasses.tolist())}
        self._tcols = (Xt != 0).any(0)
        self._ycache = None
        with torch.no_grad():
            self.tstats = self._stats(Xt, self.tyi)
            self.W_tt = label_distances_from_stats(self.tstats, self.tstats, self.kind, self.p, symmetric=True)
        self._weights = {}  # (correspondence, epsilon) -> (target weights, target self-term)
        self.warm = WarmStart()
        return self

    def _stats(self, X: Tensor, yi: Tensor) -> ClassStats:
        cov = "full" if self.kind == "gaussian" else None
        return class_stats(X, yi, covariance=cov, ridge=self.dd.ridge, dtype=None)

    def target_measure(self, state, eps: float) -> tuple[Tensor | None, Tensor | None]:
        """Target weights ``b`` and the target self-term ``OT_eps(b, b)`` (debiased only).

        Without a correspondence the target is uniform. With one, each target class ``t`` carries
        the mass of the source classes sent to it, spread evenly over its items, so that class ``c``
        can be transported onto ``corr[c]`` alone. Computed once per correspondence and epsilon."""
        corr = state.correspondence
        key = (None if corr is None else tuple(sorted(corr.items())), eps)
        if key not in self._weights:
            b = None
            if corr is not None:
                mass = torch.zeros(len(self.tclasses), dtype=torch.float64)
                n = float(state.counts.sum())
                for c, count in zip(state.classes.tolist(), state.counts.tolist()):
                    mass[self.tpos[corr[c]]] += count / n
                b = (mass / self.tcounts.double())[self.tyi].to(self.Xt.dtype)
            yy = None
            if self.debiased:
                with torch.no_grad():
                    cost = self.dd.ground_cost(self.Xt, self.Xt, self.W_tt, self.tyi, self.tyi)
                    yy = sinkhorn(b, b, cost, eps, self.solver, symmetric=True, differentiable=False,
                                  transport_cost=False).entropic
            self._weights[key] = (b, yy)
        return self._weights[key]

    # -- source -----------------------------------------------------------------------------------

    def label_distances(self, X: Tensor, y: Tensor) -> Tensor:
        """``(C_src, C_tgt)`` label distances from ``(X, y)`` to the target (no grad)."""
        _, yi = torch.unique(y, sorted=True, return_inverse=True)
        with torch.no_grad():
            return label_distances_from_stats(self._stats(X.to(self.Xt.dtype), yi), self.tstats, self.kind, self.p)

    def _source_costs(self, state):
        if state.labels == "joint":
            s = _stats_from_params(state.label_params, state.classes, state.counts)
        elif state.labels == "attached":
            s = self._stats(state.X, state.yi)
        else:
            w = self.warm
            if self._stale(state):
                with torch.no_grad():
                    s = self._stats(state.X.detach(), state.yi)
                    w.W_st = label_distances_from_stats(s, self.tstats, self.kind, self.p)
                    w.W_ss = label_distances_from_stats(s, s, self.kind, self.p, symmetric=True)
                w.labels_step = state.step
            return w.W_st, w.W_ss
        return (label_distances_from_stats(s, self.tstats, self.kind, self.p),
                label_distances_from_stats(s, s, self.kind, self.p, symmetric=True))

    def _stale(self, state) -> bool:
        last = self.warm.labels_step
        return last is None or state.step - last >= self.label_update_every or state.step < last

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
                base = self.dd.ground_cost(X.detach(), self.Xt.to(X.dtype), W_st.detach(), state.yi,
                                           self.tyi).max_value()
            pen = 10.0 * base
        return W_st + pen * mask

    def _epsilon(self, X: Tensor, W_st: Tensor, state) -> float:
        """The absolute epsilon, resolved once from the first source's cost scale (uniform weights,
        label costs without the correspondence penalty): the scale ``DatasetDistance`` uses."""
        if self.warm.epsilon is None:
            cost = self.dd.ground_cost(X.detach(), self.Xt.to(X.dtype), W_st.detach(), state.yi, self.tyi)
            self.warm.epsilon = self.dd.solver.absolute_epsilon(cost.mean_value())
        return self.warm.epsilon

    def _warm_init(self, n: int, which: str):
        w = self.warm
        if not self.warm_start or w.f_xy is None or w.f_xy.shape[0] != n:
            return None
        return (w.f_xy, w.g_xy) if which == "xy" else (w.f_xx, w.f_xx)

    def value(self, state) -> Tensor:
        """The (debiased) OTDD of ``state``'s particles to the target, differentiable w.r.t.
        ``state.X`` (and the label parameters); ``state`` has ``X, yi, classes, counts, labels,
        label_params, correspondence, step``."""
        n, m = state.X.shape[0], self.Xt.shape[0]
        if self.p == 2 and n * max(n, m) <= self.dense_elements:
            return self._value_gram(state)
        return self._value_autograd(state)

    def _solve(self, b, cost, eps, which, **kw):
        init = self._warm_init(cost.n, which)
        solver = self.solver if init is None else self.solver.with_(tol=self.solver.warm_tol)
        return sinkhorn(None, b if which == "xy" else None, cost, eps, solver, init=init, eps_scaling=init is None,
                        symmetric=which == "xx", **kw)

    def _remember(self, xy, xx):
        if self.warm_start:
            self.warm.f_xy, self.warm.g_xy = xy.f, xy.g
            if xx is not None:
                self.warm.f_xx = xx.f

    # -- squared-Euclidean fast path ---------------------------------------------------------------

    def _target_view(self, dtype, cols):
        """The target (cast, restricted to ``cols``) and its squared norms, cached across steps."""
        c = self._ycache
        if c is not None and c[0] == dtype and (
                (cols is None and c[1] is None) or (cols is not None and c[1] is not None
                                                    and torch.equal(cols, c[1]))):
            return c[2], c[3]
        Y = self.Xt.to(dtype)
        if cols is not None:
            Y = Y[:, cols].contiguous()
        y2 = (Y * Y).sum(1)
        self._ycache = (dtype, cols, Y, y2)
        return Y, y2

    def _cost_from_gram(self, G: Tensor, x2: Tensor, y2: Tensor, W: Tensor, lx: Tensor, ly: Tensor) -> Tensor:
        """``lambda_x |x - y|^2 + lambda_y W[lx, ly]`` written over the Gram matrix ``G`` (in place)."""
        C = G.mul_(-2.0).add_(x2.unsqueeze(1)).add_(y2.unsqueeze(0)).clamp_min_(0.0)
        if self.lambda_x != 1.0:
            C.mul_(self.lambda_x)
        return C.add_(W.detach().to(C.dtype)[lx].index_select(1, ly), alpha=self.lambda_y)

    @staticmethod
    def _plan(C: Tensor, res) -> Tensor:
        """The entropic coupling ``a_i b_j exp((f_i + g_j - C_ij) / eps)``, written over ``C``."""
        return exp_(C.neg_().add_(res.f.unsqueeze(1)).add_(res.g.unsqueeze(0)).div_(res.epsilon)
                    .add_(res.a.log().unsqueeze(1)).add_(res.b.log().unsqueeze(0)))

    def _gram_label_costs(self, Xd, x2, G_xy, G_xx, yi, C):
        """``"fixed"`` gaussian label costs from the Gram matrices the feature costs need anyway:
        class means by index_add, traces from ``|x|^2``, Bures cross terms from the double-centred
        class blocks (the same values as :func:`.labels.gaussian_label_distances`)."""
        cnt = torch.bincount(yi, minlength=C).to(Xd.dtype)
        mu = torch.zeros(C, Xd.shape[1], dtype=Xd.dtype, device=Xd.device).index_add_(0, yi, Xd) / cnt[:, None]
        tr = (torch.zeros(C, dtype=Xd.dtype, device=Xd.device).index_add_(0, yi, x2) / cnt
              - (mu * mu).sum(1)).clamp_min(0.0)
        t = self.tstats
        tmu, ttr = t.means.to(Xd.dtype), t.traces.to(Xd.dtype)
        M = ((mu.unsqueeze(1) - tmu.unsqueeze(0)) ** 2).sum(-1)
        Ct = len(self.tclasses)
        W_st = bures_from_parts(M, tr, ttr, bures_cross_terms_gram(G_xy, yi, C, self.tyi, Ct))
        M = ((mu.unsqueeze(1) - mu.unsqueeze(0)) ** 2).sum(-1)
        W_ss = bures_from_parts(M, tr, tr, bures_cross_terms_gram(G_xx, yi, C))
        return W_st, W_ss * (1 - torch.eye(C, dtype=W_ss.dtype, device=W_ss.device))

    def _value_gram(self, state) -> Tensor:
        """``p = 2``: every cost, the ``"fixed"`` label costs and the particle gradient come from two
        Gram matrices ``X Y^T`` and ``X X^T``. The gradient is the envelope-theorem one written out:
        ``sum_ij pi_ij dC_ij / dx_i = 2 lambda_x (r_i x_i - (pi Y)_i)`` with ``r = pi 1`` (and
        ``pi + pi^T`` for the self-term); it enters the value as ``<X, g> - <X, g>.detach()``. Label
        costs that carry a gradient (``"attached"``, ``"joint"``) enter likewise through
        ``<W, class-pair coupling mass>``. Feature columns that are zero in the particles and the
        target (image borders) are dropped: they change no cost, Gram block or gradient."""
        X = state.X
        Xd = X.detach()
        cols = self._tcols.to(Xd.device) | (Xd != 0).any(0)
        cols = None if bool(cols.all()) else cols
        Y, y2 = self._target_view(X.dtype, cols)
        Xc = Xd if cols is None else Xd[:, cols].contiguous()
        C, Ct = len(state.classes), len(self.tclasses)
        with torch.no_grad():
            x2 = (Xc * Xc).sum(1)
            G_xy = Xc @ Y.T
            G_xx = Xc @ Xc.T if (self.debiased or self.kind == "gaussian") else None
        if state.labels in ("joint", "attached") or self.kind != "gaussian":
            W_st, W_ss = self._source_costs(state)
        else:
            if self._stale(state):
                with torch.no_grad():
                    self.warm.W_st, self.warm.W_ss = self._gram_label_costs(Xd, x2, G_xy, G_xx, state.yi, C)
                self.warm.labels_step = state.step
            W_st, W_ss = self.warm.W_st, self.warm.W_ss
        eps = self._epsilon(Xd, W_st, state)
        W_st = self._penalise(W_st, state, X)
        b, yy = self.target_measure(state, eps)
        with torch.no_grad():
            c_xy = self._cost_from_gram(G_xy, x2, y2, W_st, state.yi, self.tyi)
            xy = self._solve(b, MatrixCost(c_xy), eps, "xy", differentiable=False, transport_cost=False)
            P_xy = self._plan(c_xy, xy)
            value = xy.entropic
            coef = P_xy.sum(1)
            xx = None
            if self.debiased:
                c_xx = self._cost_from_gram(G_xx, x2, x2, W_ss, state.yi, state.yi)
                xx = self._solve(None, MatrixCost(c_xx), eps, "xx", differentiable=False, transport_cost=False)
                P_xx = self._plan(c_xx, xx)
                S_xx = P_xx + P_xx.T
                coef = coef - 0.5 * S_xx.sum(1)
                value = debias(value, xx.entropic, yy.to(X.dtype))
            g = torch.addmm(coef.unsqueeze(1) * Xc, P_xy, Y, alpha=-1.0)
            if self.debiased:
                g.addmm_(S_xx, Xc, alpha=0.5)
            g.mul_(2.0 * self.lambda_x)
            if cols is not None:
                g = Xd.new_zeros(Xd.shape).index_copy_(1, torch.nonzero(cols).flatten(), g)
        self._remember(xy, xx)
        out = value.detach().clone()
        if X.requires_grad:
            lin = (X * g).sum()
            out = out + (lin - lin.detach())
        if W_st.requires_grad:
            t = (W_st * class_sums(P_xy, state.yi, C, self.tyi, Ct)).sum()
            out = out + self.lambda_y * (t - t.detach())
        if self.debiased and W_ss is not None and W_ss.requires_grad:
            t = (W_ss * class_sums(P_xx, state.yi, C, state.yi, C)).sum()
            out = out - 0.5 * self.lambda_y * (t - t.detach())
        return out

    # -- where the coupling sends each class ------------------------------------------------------

    def class_mass(self, state, max_elements: int = 1 << 27) -> tuple[Tensor, bool]:
        """``(C_src, C_tgt)`` mass that the objective's coupling at ``state`` moves from each source
        class to each target class (the correspondence penalty and target weighting included; rows
        sum to the source class shares), and whether that solve converged. No gradient.

        This is the coupling a flow follows, so it says where each class is being sent: with free
        matching and class proportions that differ between the datasets, a balanced coupling must
        send every surplus into other classes."""
        n, m = state.X.shape[0], self.Xt.shape[0]
        if n * m > max_elements:
            raise ValueError(f"the coupling would have {n * m:,} entries (> {max_elements:,}); "
                             "measure the class mass on a subsample of the particles")
        with torch.no_grad():
            X = state.X.detach()
            W_st, _ = self._source_costs(state)
            eps = self._epsilon(X, W_st, state)
            W_st = self._penalise(W_st, state, X)
            b, _ = self.target_measure(state, eps)
            cost = MatrixCost(self.dd.ground_cost(X, self.Xt.to(X.dtype), W_st, state.yi, self.tyi).block(0, n))
            init = self._warm_init(n, "xy")  # the last evaluation's potentials, on the same problem
            res = sinkhorn(None, b, cost, eps, self.solver, init=init, eps_scaling=init is None,
                           differentiable=False, transport_cost=False)
            P = res.coupling(dense=True, max_elements=max_elements)
            return class_sums(P, state.yi, len(state.classes), self.tyi, len(self.tclasses)), bool(res.converged)

    # -- general path -----------------------------------------------------------------------------

    def _dense(self, cost: PointCloudCost):
        """Build the cost matrix once per step (one autograd-tracked matmul) when it is small
        enough; the solver then never recomputes it. Large problems stay blocked/online."""
        if cost.n * cost.m <= self.dense_elements:
            return MatrixCost(cost.block(0, cost.n))
        return cost

    def _value_autograd(self, state) -> Tensor:
        """Any ``p`` and size: costs as :class:`PointCloudCost` (dense when small), gradients by
        autograd through the cost (the envelope pass of :func:`otdata.ot.sinkhorn`)."""
        X = state.X
        W_st, W_ss = self._source_costs(state)
        eps = self._epsilon(X, W_st, state)
        W_st = self._penalise(W_st, state, X)
        b, yy = self.target_measure(state, eps)
        xt = self.Xt.to(X.dtype)
        c_xy = self._dense(self.dd.ground_cost(X, xt, W_st, state.yi, self.tyi))
        xy = self._solve(b, c_xy, eps, "xy")
        xx = None
        if self.debiased:
            c_xx = self._dense(self.dd.ground_cost(X, X, W_ss, state.yi, state.yi))
            xx = self._solve(None, c_xx, eps, "xx")
        self._remember(xy, xx)
        if not self.debiased:
            return xy.loss
        return debias(xy.loss, xx.loss, yy.to(X.dtype))  # the target self-term precomputed
