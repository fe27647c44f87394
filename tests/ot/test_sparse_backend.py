"""The truncated-kernel ("sparse") backend against the dense solver on the same cost, and its
certificate: a support that misses mass is detected on the full cost, never returned as converged."""

import functools
import importlib
import math

import pytest
import torch

import otdata.ot.engine.online as online
import otdata.ot.engine.sparse as sp
import otdata.ot.engine.support as su
from otdata.ot import PointCloudCost, sinkhorn

sk = importlib.import_module("otdata.ot.sinkhorn")  # the module (otdata.ot.sinkhorn is also the function)


def _cost(n=700, m=500, d=8, seed=0, same=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g)
    lx = torch.randint(0, 3, (n,), generator=g)
    y, ly = (x, lx) if same else (torch.rand(m, d, generator=g) + 0.2, torch.randint(0, 3, (m,), generator=g))
    W = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
    return PointCloudCost(x, y, 2, 1.0, W, lx, ly, 1.0)


@pytest.fixture
def small_coarse(monkeypatch):
    """A coarse problem smaller than the data, so that the extension by c-transform is exercised."""
    monkeypatch.setattr(sp, "coarse_potentials", functools.partial(sp.coarse_potentials, size=150))


@pytest.mark.parametrize("symmetric", [False, True])
def test_sparse_equals_dense(symmetric, small_coarse):
    cost = _cost(same=symmetric)
    a = torch.full((cost.n,), 1 / cost.n)
    b = torch.full((cost.m,), 1 / cost.m)
    eps = 0.01 * cost.mean_value(a, b)
    kw = dict(symmetric=symmetric, differentiable=False, tol=1e-4, max_iter=5000)
    rs = sinkhorn(None, None, cost, eps, backend="sparse", block_elements=100_000, **kw)
    rd = sinkhorn(None, None, cost, eps, backend="dense", **kw)
    assert rs.backend == "sparse" and rs.converged and not rs.escalated
    assert float(rs.entropic) == pytest.approx(float(rd.entropic), rel=1e-4)
    # a self term's <pi, C> is tiny (the mass sits on C_ii = 0): compared up to the float32 rounding
    # of the cost (the sparse backend evaluates it as one product, the dense one by blocks)
    assert float(rs.transport_cost) == pytest.approx(float(rd.transport_cost), rel=1e-4,
                                                     abs=1e-6 * cost.mean_value(a, b))
    if symmetric:
        assert torch.equal(rs.f, rs.g)


def test_auto_takes_sparse_only_for_big_costs_without_gradient():
    cost = _cost(200, 150)
    assert sinkhorn(None, None, cost, 0.05, max_dense_bytes=1000).backend == "sparse"
    assert sinkhorn(None, None, cost, 0.05).backend == "dense"
    x = cost.x.clone().requires_grad_(True)
    assert sinkhorn(None, None, PointCloudCost(x, cost.y), 0.05, max_dense_bytes=1000).backend == "online"


def test_certificate_catches_a_support_that_misses_mass(monkeypatch, small_coarse):
    cost = _cost(300, 200)
    a = torch.full((cost.n,), 1 / cost.n)
    b = torch.full((cost.m,), 1 / cost.m)
    eps = 0.05 * cost.mean_value(a, b)
    # one entry per row, nothing by threshold: columns without support or a plan far from the marginals
    out = sp.solve_sparse(cost, a, b, eps, False, 200, 1e-4, 100_000, k=1, threshold=-math.inf,
                          coarse=sk.coarse_solve)
    assert not out[4] and not out[3] < 1e-4
    # through sinkhorn(): the solve continues in the log domain on the full cost and ends right
    monkeypatch.setattr(sk, "solve_sparse", functools.partial(sp.solve_sparse, coarse=sk.coarse_solve, k=1, threshold=-math.inf))
    kw = dict(differentiable=False, tol=1e-4, max_iter=3000)
    r = sinkhorn(None, None, cost, eps, backend="sparse", **kw)
    ref = sinkhorn(None, None, cost, eps, backend="dense", **kw)
    assert r.escalated and r.converged
    assert float(r.transport_cost) == pytest.approx(float(ref.transport_cost), rel=1e-4)
