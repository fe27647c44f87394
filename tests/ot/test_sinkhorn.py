import math

import numpy as np
import ot
import pytest
import scipy.linalg
import torch

from otdata.ot import (
    PointCloudCost, SinkhornConfig, bures_wasserstein, bures_wasserstein_diagonal, bures_wasserstein_factors, covariance_factor,
    emd2, sinkhorn, sinkhorn_divergence, sinkhorn_points, sliced_wasserstein, sqeuclidean,
)


def _clouds(n=40, m=50, d=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=dtype), torch.rand(m, d, generator=g, dtype=dtype) + 0.3


def test_transport_cost_tends_to_emd():
    x, y = _clouds()
    C = sqeuclidean(x, y)
    exact = emd2(C)
    prev = math.inf
    for eps in (1e-1, 1e-2, 2e-3):
        r = sinkhorn(None, None, C, eps, max_iter=3000, tol=1e-5)
        gap = abs(float(r.transport_cost) - exact)
        assert gap <= prev + 1e-9
        prev = gap
    assert gap / exact < 1e-2


def test_matches_pot_sinkhorn_log():
    x, y = _clouds()
    C = sqeuclidean(x, y)
    a, b = torch.full((40,), 1 / 40, dtype=torch.float64), torch.full((50,), 1 / 50, dtype=torch.float64)
    ref = float(ot.sinkhorn2(a, b, C, 0.05, method="sinkhorn_log", stopThr=1e-12, numItermax=100000))
    r = sinkhorn(None, None, C, 0.05, tol=1e-9, max_iter=5000)
    assert float(r.transport_cost) == pytest.approx(ref, rel=1e-5)


def test_divergence_self_zero_and_symmetric():
    x, y = _clouds()
    assert abs(float(sinkhorn_points(x, x, 0.05, debiased=True).divergence)) < 1e-6
    s_xy = float(sinkhorn_points(x, y, 0.05, debiased=True, tol=1e-8).divergence)
    s_yx = float(sinkhorn_points(y, x, 0.05, debiased=True, tol=1e-8).divergence)
    assert s_xy > 0 and s_xy == pytest.approx(s_yx, rel=1e-5)


def test_online_equals_dense():
    x, y = _clouds(70, 55)
    W = torch.rand(3, 2, dtype=torch.float64)
    lx, ly = torch.randint(0, 3, (70,)), torch.randint(0, 2, (55,))
    cost = PointCloudCost(x, y, 2, 1.0, W, lx, ly, 0.7)
    rd = sinkhorn(None, None, cost, 0.05, backend="dense", tol=1e-7)
    ro = sinkhorn(None, None, cost, 0.05, backend="online", block_elements=300, tol=1e-7)
    assert ro.backend == "online" and rd.backend == "dense"
    assert float(ro.transport_cost) == pytest.approx(float(rd.transport_cost), rel=1e-5)
    assert torch.allclose(ro.f, rd.f, atol=1e-5)


@pytest.mark.parametrize("backend", ["dense", "online"])
def test_gradient_finite_differences(backend):
    x, y = _clouds(8, 6, 2, seed=3)
    x = x.clone().requires_grad_(True)
    kw = dict(tol=1e-9, max_iter=20000, backend=backend, block_elements=30)
    r = sinkhorn_divergence(PointCloudCost(x, y), PointCloudCost(x, x), PointCloudCost(y, y), 0.1, **kw)
    (gx,) = torch.autograd.grad(r.loss, x)
    h = 1e-6
    for i, j in [(0, 0), (3, 1), (7, 0)]:
        xp, xm = x.detach().clone(), x.detach().clone()
        xp[i, j] += h
        xm[i, j] -= h
        fp = float(sinkhorn_divergence(PointCloudCost(xp, y), PointCloudCost(xp, xp), PointCloudCost(y, y), 0.1, **kw).divergence)
        fm = float(sinkhorn_divergence(PointCloudCost(xm, y), PointCloudCost(xm, xm), PointCloudCost(y, y), 0.1, **kw).divergence)
        assert float(gx[i, j]) == pytest.approx((fp - fm) / (2 * h), rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("scale", [1.0, 255.0])
@pytest.mark.parametrize("eps", [1e-3, 1e-1, 10.0])
def test_fp32_finite(scale, eps):
    x, y = _clouds(50, 60, 16, dtype=torch.float32)
    r = sinkhorn(None, None, PointCloudCost(x * scale, y * scale), eps, max_iter=50)
    assert torch.isfinite(r.f).all() and torch.isfinite(r.g).all()
    assert math.isfinite(float(r.transport_cost)) and math.isfinite(float(r.entropic))


def test_coupling_and_correspondences():
    x, y = _clouds(30, 20)
    r = sinkhorn(None, None, sqeuclidean(x, y), 0.01, tol=1e-8)
    P = r.coupling()
    assert torch.allclose(P.sum(0), torch.full((20,), 1 / 20, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(P.sum(1), torch.full((30,), 1 / 30, dtype=torch.float64), atol=1e-4)
    idx, w = r.correspondences(3)
    assert torch.equal(idx[:, 0], P.argmax(1))
    S = r.coupling(dense=False, k=3).to_dense()
    assert torch.allclose(S.gather(1, idx), w)


def test_bures_closed_form_diagonal_and_sqrtm():
    g = torch.Generator().manual_seed(0)
    d = 5
    mu1, mu2 = torch.randn(2, d, generator=g, dtype=torch.float64), torch.randn(3, d, generator=g, dtype=torch.float64)
    v1, v2 = torch.rand(2, d, generator=g, dtype=torch.float64) + 0.1, torch.rand(3, d, generator=g, dtype=torch.float64) + 0.1
    W = bures_wasserstein(mu1, torch.diag_embed(v1), mu2, torch.diag_embed(v2))
    closed = ((mu1[:, None] - mu2[None]) ** 2).sum(-1) + ((v1.sqrt()[:, None] - v2.sqrt()[None]) ** 2).sum(-1)
    assert torch.allclose(W, closed, rtol=1e-4)
    assert torch.allclose(bures_wasserstein_diagonal(mu1, v1, mu2, v2), closed, rtol=1e-10)
    # general covariances vs scipy sqrtm
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    B = torch.randn(d, d, generator=g, dtype=torch.float64)
    S1, S2 = A @ A.T + 0.1 * torch.eye(d), B @ B.T
    r1 = scipy.linalg.sqrtm(S1.numpy())
    ref = float(((mu1[0] - mu2[0]) ** 2).sum()) + np.trace(S1.numpy() + S2.numpy() - 2 * np.real(scipy.linalg.sqrtm(r1 @ S2.numpy() @ r1)))
    got = float(bures_wasserstein(mu1[:1], S1[None], mu2[:1], S2[None])[0, 0])
    assert got == pytest.approx(ref, rel=1e-4)


def test_bures_low_rank_route():
    g = torch.Generator().manual_seed(1)
    d = 30
    X1 = torch.randn(8, d, generator=g, dtype=torch.float64)
    X2 = torch.randn(12, d, generator=g, dtype=torch.float64) * 2 + 1
    full = []
    lr = []
    for low in (False, True):
        F1, t1 = covariance_factor(X1, low_rank=low)
        F2, t2 = covariance_factor(X2, low_rank=low)
        out = bures_wasserstein_factors(X1.mean(0)[None], [F1], t1[None], X2.mean(0)[None], [F2], t2[None])
        (lr if low else full).append(float(out))
        assert F1.shape[0] == (8 if low else d)
    S1 = torch.cov(X1.T, correction=0)
    S2 = torch.cov(X2.T, correction=0)
    ref = float(bures_wasserstein(X1.mean(0)[None], S1[None], X2.mean(0)[None], S2[None]))
    assert lr[0] == pytest.approx(ref, rel=1e-4)
    assert full[0] == pytest.approx(ref, rel=1e-4)


def test_sliced_wasserstein():
    x, y = _clouds(100, 80, 4)
    s1, s2 = sliced_wasserstein(x, y, 64, seed=1), sliced_wasserstein(x, y, 64, seed=1)
    assert float(s1) == float(s2) and float(s1) > 0
    assert float(sliced_wasserstein(x, x, 16)) < 1e-12
    # 1-D exact check against POT
    a, b = x[:, :1], y[:, :1]
    ref = ot.emd2([], [], ot.dist(a.numpy(), b.numpy()))
    from otdata.ot.sliced import w_pp_sorted
    assert float(w_pp_sorted(a.T.sort(1)[0], b.T.sort(1)[0], 2.0)[0]) == pytest.approx(ref, rel=1e-8)


def test_bad_inputs():
    with pytest.raises(ValueError):
        sinkhorn(None, None, torch.rand(3, 3), 0.0)
    with pytest.raises(ValueError):
        sinkhorn(None, None, torch.rand(3, 3), 0.1, backend="gpu")
    with pytest.raises(TypeError):
        sinkhorn(None, None, [[1.0]], 0.1)


def test_dense_kernel_variants_agree():
    # the acceleration, iterations per level and the epsilon ratio (squaring vs power path) only
    # change the route, not the solution; the online log-domain solver is the independent check
    x, y = _clouds(45, 35, 3, seed=5)
    cost = PointCloudCost(x, y)
    ref = sinkhorn(None, None, cost, 0.01, backend="online", tol=1e-9, max_iter=20000)
    for kw in (dict(acceleration="none"), dict(acceleration="overrelax", overrelax=1.8), dict(acceleration="anderson"),
               dict(level_iter=3, scaling=0.7)):
        r = sinkhorn(None, None, cost, 0.01, backend="dense", tol=1e-9, max_iter=20000, **kw)
        assert r.converged
        assert float(r.transport_cost) == pytest.approx(float(ref.transport_cost), rel=1e-6)
        assert torch.allclose(r.f, ref.f, atol=1e-6) and torch.allclose(r.g, ref.g, atol=1e-6)


def test_anderson_needs_fewer_iterations_at_small_epsilon_for_the_same_solution():
    """At a small epsilon plain Sinkhorn converges slowly; Anderson acceleration of its map reaches
    the same solution (POT's log-domain Sinkhorn on the same float64 cost) in fewer iterations than
    over-relaxation: 716 vs 3,261 at relative epsilon 1e-3 on these clouds."""
    x, y = _clouds(120, 100, 5, seed=7)
    C = PointCloudCost(x, y).dense()
    a, b = np.full(120, 1 / 120), np.full(100, 1 / 100)
    for rel in (4e-3, 1e-3):
        eps = rel * float(C.mean())
        runs = {acc: sinkhorn(None, None, C, eps, tol=1e-6, max_iter=50_000, backend="dense", acceleration=acc)
                for acc in ("overrelax", "anderson")}
        assert all(r.converged for r in runs.values())
        if rel == 4e-3:  # (POT needs 3,000 log-domain iterations here, 56,000 at 1e-3)
            P = ot.bregman.sinkhorn_log(a, b, C.numpy(), eps, numItermax=20_000, stopThr=1e-9)
            ref = float((torch.from_numpy(P) * C).sum())
        else:
            ref = float(runs["overrelax"].transport_cost)
            assert runs["anderson"].n_iter < 0.5 * runs["overrelax"].n_iter
        for r in runs.values():
            assert float(r.transport_cost) == pytest.approx(ref, rel=1e-5)


def test_unknown_acceleration_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="anderson"):
        sinkhorn(None, None, torch.rand(3, 3), 0.1, acceleration="nesterov")
    with pytest.raises(ValueError, match="anderson"):
        SinkhornConfig(acceleration="nesterov")


def test_front_door_takes_a_config():
    x, y = _clouds(60, 50, 3)
    C = sqeuclidean(x, y)
    cfg = SinkhornConfig(epsilon=0.05, tol=1e-6, max_iter=3000)
    # epsilon=None: the config's relative epsilon, resolved on this cost's scale
    r = sinkhorn(None, None, C, config=cfg)
    assert r.epsilon == pytest.approx(0.05 * float(C.mean()), rel=1e-6)
    same = sinkhorn(None, None, C, r.epsilon, tol=1e-6, max_iter=3000)
    assert float(r.transport_cost) == float(same.transport_cost) and r.n_iter == same.n_iter
    # a keyword overrides the config's setting of the same name
    loose = sinkhorn(None, None, C, r.epsilon, cfg, tol=1e-2)
    assert loose.n_iter < r.n_iter and loose.marginal_error < 1e-2
    with pytest.raises(TypeError, match="unknown setting"):
        sinkhorn(None, None, C, r.epsilon, cfg, tolerance=1e-3)
    with pytest.raises(TypeError, match="SinkhornConfig"):
        sinkhorn(None, None, C, r.epsilon, {"tol": 1e-3})
