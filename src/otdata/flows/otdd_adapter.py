"""OTDD as a flow objective, assembled from the OT engine in :mod:`otdata.ot`.

The flow needs a few things a one-shot distance does not: target statistics and the target self-term
computed once; source class statistics that are detached (``"fixed"``), differentiable
(``"attached"``) or free parameters (``"joint"``); and a label cost modified by a class
correspondence; and Sinkhorn warm-started from the previous step. This module builds exactly that on
top of :func:`otdata.ot.sinkhorn`, :class:`otdata.ot.PointCloudCost` and the Bures-Wasserstein
factors of :mod:`otdata.ot.gaussian` (no Sinkhorn or Bures solver of its own); at step 0 its value
equals :class:`otdata.distance.DatasetDistance`'s debiased divergence (tested).
Defaults differ from a one-shot distance: ``max_iter=100``, ``tol=1e-3`` per step, because the
warm start carries the potentials from step to step. Label costs use the batched Bures cross terms of
:mod:`otdata.ot.gaussian` (all class pairs in one matmul and one batched ``eigvalsh``; with gradient,
eigenvalues below a relative floor get none, which avoids ``d sqrt(0)``).

For ``p = 2`` and problems whose cost matrices fit (``dense_elements``) a step needs two Gram
matrices, ``X Y^T`` and ``X X^T``: they give the feature costs, the ``"fixed"`` label costs (class
blocks double-centred, no factor matmul) and, with the Sinkhorn couplings, the particle gradient
``2 (r_i x_i - (pi Y)_i)`` written out (one matmul per problem, no autograd graph over ``n x m``
matrices). Other ``p`` or larger problems take the general path (autograd through the cost).

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
from otdata.ot._threads import single_thread
from otdata.ot.gaussian import bures_cross_terms, bures_cross_terms_gram

__all__ = ["OTDDEngine", "class_factors", "label_cost", "source_stats"]

LABEL_DISTANCES = ("gaussian", "means")


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


def label_cost(stats1, stats2, kind: str, symmetric: bool = False) -> Tensor:
    """``(C1, C2)`` label-distance matrix from ``(means, factors, traces)`` pairs."""
    with single_thread():
        return _label_cost(stats1, stats2, kind, symmetric)


def _label_cost(stats1, stats2, kind, symmetric):
    mu1, F1, tr1 = stats1
    mu2, F2, tr2 = stats2
    M = ((mu1.unsqueeze(1) - mu2.unsqueeze(0)) ** 2).sum(-1)
    if kind == "means":
        return M
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in [mu1, tr1, mu2, tr2, *F1, *F2])
    # all class pairs in one matmul and one batched eigvalsh; "safe" keeps gradients finite
    cross = bures_cross_terms(F1, None if symmetric else F2, safe=grad)
    W = (M + tr1.unsqueeze(1) + tr2.unsqueeze(0) - 2 * cross).clamp_min(0.0)
    if symmetric:
        W = W * (1 - torch.eye(W.shape[0], dtype=W.dtype, device=W.device))  # exact zeros on the diagonal
    return W


def _gram_label_costs(Xd, x2, G_xy, G_xx, yi, C, tstats, tyi, Ct):
    """``"fixed"`` gaussian label costs (no grad) from the Gram matrices ``X Y^T`` / ``X X^T`` that
    the feature costs need anyway: class means by index_add, traces from ``|x|^2``, Bures cross
    terms from the double-centred class blocks (no second pass over the 784-d features)."""
    cnt = torch.bincount(yi, minlength=C).to(Xd.dtype)
    mu = torch.zeros(C, Xd.shape[1], dtype=Xd.dtype, device=Xd.device).index_add_(0, yi, Xd) / cnt[:, None]
    tr = (torch.zeros(C, dtype=Xd.dtype, device=Xd.device).index_add_(0, yi, x2) / cnt
          - (mu * mu).sum(1)).clamp_min(0.0)
    tmu, _, ttr = tstats
    tmu, ttr = tmu.to(Xd.dtype), ttr.to(Xd.dtype)
    M = ((mu.unsqueeze(1) - tmu.unsqueeze(0)) ** 2).sum(-1)
    W_st = (M + tr.unsqueeze(1) + ttr.unsqueeze(0)
            - 2 * bures_cross_terms_gram(G_xy, yi, C, tyi, Ct)).clamp_min(0.0)
    W_ss = None
    if G_xx is not None:
        M = ((mu.unsqueeze(1) - mu.unsqueeze(0)) ** 2).sum(-1)
        W_ss = (M + tr.unsqueeze(1) + tr.unsqueeze(0) - 2 * bures_cross_terms_gram(G_xx, yi, C)).clamp_min(0.0)
        W_ss = W_ss * (1 - torch.eye(C, dtype=W_ss.dtype, device=W_ss.device))
    return W_st, W_ss


def _class_sums(P: Tensor, lx: Tensor, Cx: int, ly: Tensor, Cy: int) -> Tensor:
    """``(Cx, Cy)`` coupling mass between every pair of classes."""
    rows = P.new_zeros(Cx, P.shape[1]).index_add_(0, lx, P)
    return P.new_zeros(Cx, Cy).index_add_(1, ly, rows)


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
        overrelax: over-relaxation of the (warm-started) dense Sinkhorn iterations. 1.3 here, not
            the solver's 1.8: on the MNIST flow benchmark a warm-started step needed 21-64
            iterations at 1.3, 36-76 at 1 and hit ``max_iter=100`` at 1.8.
        dense_elements: build the cost matrix once per step when ``n * m`` is at most this.
        warm_start: start each step's Sinkhorn from the previous step's potentials (kept in the
            flow state's cache, hence in checkpoints) and skip epsilon-scaling; particles move
            little per step, so this cuts the iterations by an order of magnitude.
    """

    def __init__(self, label_distance: str = "gaussian", epsilon: float = 0.1, p: int = 2,
                 debiased: bool = True, penalty: float | None = None, lambda_x: float = 1.0,
                 lambda_y: float = 1.0, max_iter: int = 100, tol: float = 1e-3,
                 scaling: float = 0.5, backend: str = "auto", warm_start: bool = True,
                 dense_elements: int = 1 << 25, overrelax: float = 1.3):
        if label_distance not in LABEL_DISTANCES:
            raise ValueError(f"label_distance={label_distance!r} is not supported in flows; use one "
                             f"of {LABEL_DISTANCES}")
        self.kind = label_distance
        self.epsilon = float(epsilon)
        self.p = p
        self.debiased = debiased
        self.penalty = penalty
        self.lambda_x, self.lambda_y = float(lambda_x), float(lambda_y)
        self.sk = dict(max_iter=max_iter, tol=tol, scaling=scaling, backend=backend,
                       overrelax=float(overrelax))
        self.warm_start = warm_start
        self.dense_elements = int(dense_elements)

    # -- target -----------------------------------------------------------------------------------

    def bind_target(self, Xt: Tensor, yt: Tensor) -> None:
        self.Xt = Xt
        self.tclasses, self.tyi, self.tcounts = torch.unique(yt, sorted=True, return_inverse=True,
                                                             return_counts=True)
        self.tpos = {int(c): k for k, c in enumerate(self.tclasses.tolist())}
        self._tcols = (Xt != 0).any(0)
        self._ycache = None
        with torch.no_grad():
            self.tstats = class_factors(Xt, self.tyi, len(self.tclasses))
            self.W_tt = label_cost(self.tstats, self.tstats, self.kind, symmetric=True)
        self._weights = {}  # correspondence → (target weights, target self-term)

    def target_measure(self, state) -> tuple[Tensor | None, Tensor | None]:
        """Target weights ``b`` and the target self-term ``OT_eps(b, b)`` (debiased only).

        Without a correspondence the target is uniform. With one, each target class ``t`` carries
        the mass of the source classes sent to it (``sum_{c: corr[c] = t} n_c / n``), spread evenly
        over its items, so that class ``c`` can be transported onto ``corr[c]`` alone: with uniform
        weights, class proportions that differ between the datasets would force mass across
        classes at the penalty's cost and drag particles toward other classes. Computed once per
        correspondence (labels and their counts do not change during a flow).
        """
        corr = state.correspondence
        key = None if corr is None else tuple(sorted(corr.items()))
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
                    cost = PointCloudCost(self.Xt, self.Xt, self.p, self.lambda_x, self.W_tt,
                                          self.tyi, self.tyi, self.lambda_y)
                    yy = sinkhorn(b, b, cost, self.epsilon, symmetric=True, differentiable=False,
                                  **self.sk).loss.detach()
            self._weights[key] = (b, yy)
        return self._weights[key]

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
        n, m = state.X.shape[0], self.Xt.shape[0]
        if self.p == 2 and n * max(n, m) <= self.dense_elements:
            return self._value_gram(state, label_update_every)
        return self._value_autograd(state, label_update_every)

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

    def _cost_from_gram(self, G: Tensor, x2: Tensor, y2: Tensor, W: Tensor, lx: Tensor,
                        ly: Tensor) -> Tensor:
        """``lambda_x |x - y|^2 + lambda_y W[lx, ly]`` written over the Gram matrix ``G`` (in place)."""
        C = G.mul_(-2.0).add_(x2.unsqueeze(1)).add_(y2.unsqueeze(0)).clamp_min_(0.0)
        if self.lambda_x != 1.0:
            C.mul_(self.lambda_x)
        return C.add_(W.detach().to(C.dtype)[lx].index_select(1, ly), alpha=self.lambda_y)

    def _plan(self, C: Tensor, res) -> Tensor:
        """The entropic coupling ``a_i b_j exp((f_i + g_j - C_ij) / eps)``, written over ``C``."""
        return (C.neg_().add_(res.f.unsqueeze(1)).add_(res.g.unsqueeze(0)).div_(self.epsilon)
                .add_(res.a.log().unsqueeze(1)).add_(res.b.log().unsqueeze(0)).exp_())

    def _value_gram(self, state, update_every: int) -> Tensor:
        """``p = 2``: every cost, the ``"fixed"`` label costs and the particle gradient come from two
        Gram matrices ``X Y^T`` and ``X X^T`` (no autograd graph through ``n x m`` matrices).

        The gradient is the envelope-theorem one, written out: for ``C_ij = lambda_x |x_i - y_j|^2``,
        ``sum_ij pi_ij dC_ij / dx_i = 2 lambda_x (r_i x_i - (pi Y)_i)`` with ``r = pi 1`` (and
        ``pi + pi^T`` for the self-term), i.e. one matmul per Sinkhorn problem. It enters the
        returned value through ``<X, g> - <X, g>.detach()``, so ``backward`` yields exactly ``g``;
        label costs that carry a gradient (``"attached"``, ``"joint"``) enter likewise through
        ``<W, class-pair coupling mass>``. Feature columns that are zero in the particles and the
        target (image borders) are dropped: they change no cost, Gram block or gradient.
        """
        X = state.X
        Xd = X.detach()
        cols = self._tcols.to(Xd.device) | (Xd != 0).any(0)
        cols = None if bool(cols.all()) else cols
        Y, y2 = self._target_view(X.dtype, cols)
        Xc = Xd if cols is None else Xd[:, cols].contiguous()
        cache = state.cache
        C, Ct = len(state.classes), len(self.tclasses)
        with torch.no_grad():
            x2 = (Xc * Xc).sum(1)
            G_xy = Xc @ Y.T
            G_xx = Xc @ Xc.T if self.debiased else None
        if state.labels in ("joint", "attached"):
            W_st, W_ss = self._source_costs(state, update_every)
        else:
            last = cache.get("otdd_step")
            if last is None or state.step - last >= update_every or state.step < last:
                with torch.no_grad():
                    if self.kind == "gaussian":
                        W_st, W_ss = _gram_label_costs(Xd, x2, G_xy, G_xx, state.yi, C, self.tstats,
                                                       self.tyi, Ct)
                    else:
                        s = class_factors(Xd, state.yi, C)
                        W_st = label_cost(s, self.tstats, self.kind)
                        W_ss = label_cost(s, s, self.kind, symmetric=True)
                cache["otdd_W_st"], cache["otdd_W_ss"] = W_st, W_ss
                cache["otdd_step"] = state.step
            W_st, W_ss = cache["otdd_W_st"], cache["otdd_W_ss"]
        W_st = self._penalise(W_st, state, X)
        b, yy = self.target_measure(state)
        warm = self.warm_start and "otdd_f_xy" in cache and cache["otdd_f_xy"].shape[0] == X.shape[0]
        with torch.no_grad():
            c_xy = self._cost_from_gram(G_xy, x2, y2, W_st, state.yi, self.tyi)
            xy = sinkhorn(None, b, MatrixCost(c_xy), self.epsilon,
                          init=(cache["otdd_f_xy"], cache["otdd_g_xy"]) if warm else None,
                          eps_scaling=not warm, differentiable=False, **self.sk)
            P_xy = self._plan(c_xy, xy)
            value = xy.entropic
            coef = P_xy.sum(1)
            if self.debiased:
                if W_ss is None:  # cached by a run without the self-term
                    W_ss = _gram_label_costs(Xd, x2, G_xy, G_xx, state.yi, C, self.tstats, self.tyi,
                                             Ct)[1]
                c_xx = self._cost_from_gram(G_xx, x2, x2, W_ss, state.yi, state.yi)
                xx = sinkhorn(None, None, MatrixCost(c_xx), self.epsilon, symmetric=True,
                              init=(cache["otdd_f_xx"], cache["otdd_f_xx"]) if warm else None,
                              eps_scaling=not warm, differentiable=False, **self.sk)
                P_xx = self._plan(c_xx, xx)
                S_xx = P_xx + P_xx.T
                coef = coef - 0.5 * S_xx.sum(1)
                # Sinkhorn divergence, target self-term precomputed at bind
                value = value - 0.5 * xx.entropic - 0.5 * yy.to(X.dtype)
            g = torch.addmm(coef.unsqueeze(1) * Xc, P_xy, Y, alpha=-1.0)
            if self.debiased:
                g.addmm_(S_xx, Xc, alpha=0.5)
            g.mul_(2.0 * self.lambda_x)
            if cols is not None:
                g = Xd.new_zeros(Xd.shape).index_copy_(1, torch.nonzero(cols).flatten(), g)
        if self.warm_start:
            cache["otdd_f_xy"], cache["otdd_g_xy"] = xy.f, xy.g
            if self.debiased:
                cache["otdd_f_xx"] = xx.f
        out = value.detach().clone()
        if X.requires_grad:
            lin = (X * g).sum()
            out = out + (lin - lin.detach())
        if W_st.requires_grad:
            t = (W_st * _class_sums(P_xy, state.yi, C, self.tyi, Ct)).sum()
            out = out + self.lambda_y * (t - t.detach())
        if self.debiased and W_ss is not None and W_ss.requires_grad:
            t = (W_ss * _class_sums(P_xx, state.yi, C, state.yi, C)).sum()
            out = out - 0.5 * self.lambda_y * (t - t.detach())
        return out

    # -- general path -----------------------------------------------------------------------------

    def _value_autograd(self, state, label_update_every: int = 1) -> Tensor:
        """Any ``p`` and size: costs as :class:`PointCloudCost` (dense when small), gradients by
        autograd through the cost (the envelope pass of :func:`otdata.ot.sinkhorn`)."""
        X = state.X
        W_st, W_ss = self._source_costs(state, label_update_every)
        W_st = self._penalise(W_st, state, X)
        b, yy = self.target_measure(state)
        xt = self.Xt.to(X.dtype)
        c_xy = self._dense(PointCloudCost(X, xt, self.p, self.lambda_x, W_st, state.yi, self.tyi,
                                          self.lambda_y))
        cache = state.cache
        warm = self.warm_start and "otdd_f_xy" in cache and cache["otdd_f_xy"].shape[0] == X.shape[0]
        kw = dict(self.sk)
        xy = sinkhorn(None, b, c_xy, self.epsilon,
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
        return xy.loss - 0.5 * xx.loss - 0.5 * yy.to(X.dtype)
