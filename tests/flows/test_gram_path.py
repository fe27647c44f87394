"""The squared-Euclidean OTDD path (Gram matrices, gradient written out) against the general path
(cost matrices with autograd): same value, same gradients, in every label mode."""

import pytest
import torch

from flowtoy import gaussians
from otdata.flows import OTDDFunctional
from otdata.flows.functionals import FlowState, class_index
from otdata.distance import class_stats


def _data(zero_cols=False):
    Xs, ys = gaussians([[0.0, 0.0, 0.0, 1.0], [0.0, 3.0, 1.0, 0.0], [2.0, 1.0, 0.0, 0.0]], n=12, seed=0)
    Xt, yt = gaussians([[2.0, 0.0, 0.0, 0.0], [2.0, 3.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]], n=15, seed=1)
    Xs, Xt = Xs.double(), Xt.double()
    if zero_cols:  # columns zero in both (dropped) and zero in the target only (kept)
        Xs = torch.cat([Xs, torch.zeros(len(Xs), 2), torch.rand(len(Xs), 1, dtype=torch.float64)], 1)
        Xt = torch.cat([Xt, torch.zeros(len(Xt), 3)], 1)
    return Xs, ys, Xt, yt


def _state(X, y, labels, corr=None):
    classes, yi, counts = class_index(y)
    lp = None
    if labels == "joint":
        st = class_stats(X, yi, covariance="full", dtype=None)
        mu, F = st.means, st.factors
        lp = {"means": (mu + 0.1).requires_grad_(True), "factors": [(1.1 * f).requires_grad_(True) for f in F]}
    return FlowState(X=X.clone().requires_grad_(True), y=y, yi=yi, classes=classes, counts=counts,
                     labels=labels, label_params=lp, correspondence=corr)


@pytest.mark.parametrize("labels", ["fixed", "attached", "joint"])
@pytest.mark.parametrize("debiased,corr,zero_cols,kind", [
    (True, None, False, "gaussian"),
    (True, {0: 1, 1: 0, 2: 2}, True, "gaussian"),
    (False, None, True, "gaussian"),
    (True, None, False, "means"),
])
def test_gram_path_equals_autograd_path(labels, debiased, corr, zero_cols, kind):
    if zero_cols and labels == "attached":
        pytest.skip("zero columns give repeated zero eigenvalues in the full-rank covariance square "
                    "root, whose eigh gradient is NaN on both paths")
    Xs, ys, Xt, yt = _data(zero_cols)
    dd = dict(label_distance=kind, epsilon=0.5, relative=False, tol=1e-10, max_iter=5000, debiased=debiased,
              lambda_x=0.7, lambda_y=1.3)
    f = OTDDFunctional(dd, warm_start=False).bind(Xt, yt)
    out = {}
    for path in ("_value_gram", "_value_autograd"):
        st = _state(Xs, ys, labels, corr)
        v = getattr(f.engine, path)(st)
        params = [st.X] + ([st.label_params["means"], *st.label_params["factors"]] if labels == "joint" else [])
        grads = torch.autograd.grad(v, params, allow_unused=True)
        out[path] = (v.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)])
    (v1, g1), (v2, g2) = out["_value_gram"], out["_value_autograd"]
    assert abs(float(v1 - v2)) < 1e-8 * max(1.0, abs(float(v2)))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-8)


def test_fixed_label_costs_are_cached_between_updates():
    Xs, ys, Xt, yt = _data()
    f = OTDDFunctional({"epsilon": 0.5, "relative": False}, label_update_every=3).bind(Xt, yt)
    st = _state(Xs, ys, "fixed")
    f(st)
    W0 = f.engine.warm.W_st
    assert not W0.requires_grad  # "fixed": no gradient through the label costs
    for step in (1, 2):
        st.step = step
        with torch.no_grad():
            st.X += 0.1
        f(st)
        assert f.engine.warm.W_st is W0
    st.step = 3
    f(st)
    assert f.engine.warm.W_st is not W0 and f.engine.warm.labels_step == 3
