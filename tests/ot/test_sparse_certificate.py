"""The large-problem machinery against independent references on small problems: the support's
certificate is an upper bound of the full problem's marginal errors, the symmetric half pass keeps
exactly the threshold set (symmetric, values included), the one-pass (fused, over-relaxed)
log-domain iteration converges to the dense solver's solution and POT's, and a diffuse plan skips
the truncation and still ends certified."""

import functools
import importlib
import math

import ot
import pytest
import torch

import otdata.ot.engine.online as online
import otdata.ot.engine.sparse as sp
import otdata.ot.engine.support as su
from otdata.ot import PointCloudCost, sinkhorn

sk = importlib.import_module("otdata.ot.sinkhorn")


def _cost(n=600, m=450, d=6, seed=0, same=False, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g) * spread
    lx = torch.randint(0, 3, (n,), generator=g)
    if same:
        y, ly = x, lx
    else:
        y, ly = torch.rand(m, d, generator=g) * spread + 0.2, torch.randint(0, 3, (m,), generator=g)
    W = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
    return PointCloudCost(x, y, 2, 1.0, W, lx, ly, 1.0)


def _uniform(k):
    return torch.full((k,), 1.0 / k)


def _full_errors(cost, f, g, eps):
    """L1 errors of both marginals of the plan of (f, g) on the whole (dense, float64) cost."""
    C = cost.dense().double()
    a, b = _uniform(cost.n).double(), _uniform(cost.m).double()
    P = ((f.double()[:, None] + g.double()[None] - C) / eps).exp() * a[:, None] * b[None]
    return float((P.sum(1) - a).abs().sum()), float((P.sum(0) - b).abs().sum()), float((P * C).sum())


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("threshold", [30.0, 5.0])
def test_certificate_bounds_the_full_errors(symmetric, threshold):
    cost = _cost(same=symmetric)
    a, b = _uniform(cost.n), _uniform(cost.m)
    eps = 0.02 * cost.mean_value(a, b)
    f0, g0, _ = sp.coarse_potentials(cost, a, b, eps, symmetric, 50_000, sk.coarse_solve, size=200)
    sup, logx = su.select_support(cost, f0, g0, eps, 64, threshold, 50_000, symmetric)
    f, g, _, _ = sp.sparse_iterations(sup, f0, g0, a, b, eps, 500, 1e-6, 1.5)
    row_err, col_err, tc, out = sp.certify(sup, f, g, f0, g0, logx, a, b, eps)
    full_row, full_col, full_tc = _full_errors(cost, f, g, eps)
    # up to the float32 rounding of the cost (scores from one product vs the dense blocks: ~1e-5)
    assert full_row <= row_err * (1 + 1e-4) + 2e-5
    assert full_col <= col_err * (1 + 1e-4) + 2e-5
    assert tc <= full_tc * (1 + 1e-5) and full_tc - tc <= out * cost.max_value() * (1 + 1e-4) + 1e-5 * full_tc
    if threshold < 10:  # a support that leaves mass out: the bound is what certifies (or refuses) it
        assert out > 1e-7


def test_symmetric_half_pass_keeps_the_threshold_set():
    cost = _cost(500, same=True)
    a = _uniform(cost.n)
    eps = 0.02 * cost.mean_value(a, a)
    f = torch.randn(cost.n) * eps
    sup, logx = su.select_symmetric(cost, f, eps, k=10_000, threshold=12.0, tile=64)  # no budget cut
    S = (f[:, None] + f[None] - cost.dense()) / eps
    want = (S > -12.0) | torch.eye(cost.n, dtype=torch.bool)
    got = torch.zeros_like(want)
    got[sup.rows.long(), sup.cols.long()] = True
    # entries right at the threshold may fall either way by the float rounding of the tiles
    assert ((got != want) & ((S + 12.0).abs() > 1e-4)).sum() == 0
    M = torch.sparse_coo_tensor(torch.stack([sup.rows.long(), sup.cols.long()]), sup.vals, (500, 500)).to_dense()
    assert torch.equal(M, M.T)  # exactly symmetric support and values
    # the mass left out, per row, against the dense computation
    X = (S.double().exp() * (~got).double() / cost.n).sum(1)
    assert torch.allclose(logx.exp(), X, rtol=1e-3, atol=1e-30)


def test_symmetric_budget_raises_the_threshold_and_stays_certified():
    cost = _cost(600, same=True)
    a = _uniform(cost.n)
    eps = 0.02 * cost.mean_value(a, a)
    f0, _, _ = sp.coarse_potentials(cost, a, a, eps, True, 50_000, sk.coarse_solve, size=200)
    sup, logx = su.select_symmetric(cost, f0, eps, k=4, threshold=30.0, tile=128)
    assert sup.nnz <= 2 * 4 * 600 + 600
    f, _, _, _ = sp.sparse_iterations(sup, f0, f0, a, a, eps, 500, 1e-6, 1.0)
    row_err, _, _, out = sp.certify(sup, f, f, f0, f0, logx, a, a, eps)
    assert out > 0
    assert _full_errors(cost, f, f, eps)[0] <= row_err * (1 + 1e-4) + 2e-5


def test_symmetric_extension_is_close_to_the_full_potentials():
    cost = _cost(800, same=True)
    a = _uniform(cost.n)
    eps = 0.01 * cost.mean_value(a, a)
    f0, _, _ = sp.coarse_potentials(cost, a, a, eps, True, 50_000, sk.coarse_solve, size=300)
    ref = sinkhorn(None, None, cost, eps, symmetric=True, backend="dense", tol=1e-6, differentiable=False)
    assert float(((f0 - ref.f) / eps).abs().max()) < 3.0


@pytest.mark.parametrize("accelerate", [False, True])
def test_fused_online_pass_matches_dense_and_pot(accelerate):
    cost = _cost(300, 200)
    a, b = torch.full((300,), 1 / 300, dtype=torch.float64), torch.full((200,), 1 / 200, dtype=torch.float64)
    cost64 = PointCloudCost(cost.x.double(), cost.y.double(), 2, 1.0, cost.W.double(), cost.lx, cost.ly, 1.0)
    C = cost64.dense()
    eps = 0.05 * float(C.mean())
    eng = online.RowBlocks(cost64, 5_000)
    f, g, it, err, conv, tc = online.solve_online(eng, torch.zeros(300, dtype=torch.float64),
                                               torch.zeros(200, dtype=torch.float64), a, b, a.log(), b.log(),
                                               sk.epsilon_schedule(float(C.max()), eps, 0.5), 2000, 1e-8, False,
                                               False, accelerate, True)
    assert conv and err < 1e-8
    P = ((f[:, None] + g[None] - C) / eps).exp() * a[:, None] * b[None]  # the returned pair is the measured one
    assert float((P.sum(1) - a).abs().sum()) < 1e-8 and float((P.sum(0) - b).abs().sum()) < 1e-8
    assert tc == pytest.approx(float((P * C).sum()), rel=1e-10)
    ref = float(ot.sinkhorn2(a, b, C, eps, method="sinkhorn_log", stopThr=1e-12, numItermax=100000))
    assert tc == pytest.approx(ref, rel=1e-6)


def test_diffuse_plan_skips_the_truncation_and_is_certified(monkeypatch):
    # a large epsilon: every row spreads its mass over all columns, far more than k = 4 can hold
    monkeypatch.setattr(sk, "solve_sparse", functools.partial(sp.solve_sparse, coarse=sk.coarse_solve, k=4))
    monkeypatch.setattr(sp, "coarse_potentials", functools.partial(sp.coarse_potentials, size=150))
    cost = _cost(400, 300)
    a, b = _uniform(400), _uniform(300)
    eps = 0.5 * cost.mean_value(a, b)
    out = sp.solve_sparse(cost, a, b, eps, False, 200, 1e-4, 50_000, k=4, coarse=sk.coarse_solve)
    assert not out[4] and out[6] == 0  # no support was built
    kw = dict(differentiable=False, tol=1e-5, max_iter=3000)
    r = sinkhorn(None, None, cost, eps, backend="sparse", **kw)
    ref = sinkhorn(None, None, cost, eps, backend="dense", **kw)
    assert r.escalated and r.converged and r.marginal_error < 1e-5
    assert float(r.transport_cost) == pytest.approx(float(ref.transport_cost), rel=1e-4)
    assert float(r.entropic) == pytest.approx(float(ref.entropic), rel=1e-4)
    row, col, _ = _full_errors(cost, r.f, r.g, eps)
    assert max(row, col) < 1e-4


def test_moderately_diffuse_plan_warm_starts_the_full_passes(monkeypatch):
    # a coarse plan that misses a few tol: one truncated solve, then full passes from its potentials
    coarse = sp.coarse_potentials

    def missing_5tol(*args, **kwargs):
        f, g, _ = coarse(*args, **{**kwargs, "size": 150})
        return f, g, 5e-4

    monkeypatch.setattr(sp, "coarse_potentials", missing_5tol)
    cost = _cost(400, 300)
    a, b = _uniform(400), _uniform(300)
    eps = 0.02 * cost.mean_value(a, b)
    out = sp.solve_sparse(cost, a, b, eps, False, 500, 1e-4, 50_000, k=8, coarse=sk.coarse_solve)
    assert not out[4] and out[6] > 0 and bool(torch.isfinite(out[0]).all())
    monkeypatch.setattr(sk, "solve_sparse", functools.partial(sp.solve_sparse, coarse=sk.coarse_solve, k=8))
    kw = dict(differentiable=False, tol=1e-5, max_iter=3000)
    r = sinkhorn(None, None, cost, eps, backend="sparse", **kw)
    ref = sinkhorn(None, None, cost, eps, backend="dense", **kw)
    assert r.escalated and r.converged
    assert float(r.transport_cost) == pytest.approx(float(ref.transport_cost), rel=1e-4)
    row, col, _ = _full_errors(cost, r.f, r.g, eps)
    assert max(row, col) < 2e-5
