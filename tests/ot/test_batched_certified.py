"""Certified stopping of the batched solver (``rtol``): bounds on exact OT, checked against POT's
exact solver, and the batching helpers of the exact label distances."""

import ot
import pytest
import torch

from otdata.distance import exact_label_distances
from otdata.distance.labels import _size_chunks
from otdata.ot.batched import batched_sinkhorn


def _batch(dtype=torch.float64, seed=0):
    """Six problems of 4-d Gaussian clouds, three padded on the rows and three on the columns."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(6, 30, 4, generator=g, dtype=torch.float64)
    Y = 1.5 * torch.randn(6, 25, 4, generator=g, dtype=torch.float64) + 0.3
    C = torch.cdist(X, Y) ** 2
    a = torch.full((6, 30), 1 / 30, dtype=torch.float64)
    b = torch.full((6, 25), 1 / 25, dtype=torch.float64)
    a[:3, 20:], a[:3, :20] = 0, 1 / 20
    b[3:, 10:], b[3:, :10] = 0, 1 / 10
    ref = torch.tensor([ot.emd2(a[k][a[k] > 0].numpy(), b[k][b[k] > 0].numpy(), C[k][a[k] > 0][:, b[k] > 0].numpy())
                        for k in range(6)], dtype=torch.float64)
    mean = (a.unsqueeze(2) * C * b.unsqueeze(1)).sum((1, 2))
    return C.to(dtype), a.to(dtype), b.to(dtype), mean.to(dtype), ref


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_certified_bounds_bracket_exact_ot(dtype):
    C, a, b, mean, ref = _batch(dtype)
    rtol = 5e-3
    r = batched_sinkhorn(C, a, b, 3e-3 * mean, rtol=rtol)
    assert r.converged and r.gap <= rtol
    up, lo = r.transport_cost.double(), r.lower.double()
    slack = 1e-5 if dtype == torch.float32 else 1e-9  # round-off of the bounds themselves
    assert torch.all(lo <= ref * (1 + slack)) and torch.all(up >= ref * (1 - slack))  # weak duality, feasibility
    assert torch.all((up - ref) / ref <= rtol + slack)  # the certified statement, against POT emd2


def test_certified_plan_is_feasible_and_is_the_gradient():
    C, a, b, mean, ref = _batch()
    C = C.clone().requires_grad_(True)
    r = batched_sinkhorn(C, a, b, 3e-3 * mean.detach(), rtol=5e-3)
    r.transport_cost.sum().backward()
    P = C.grad  # the rounded plan: exactly on the transport polytope, zero on padding
    assert torch.allclose(P.sum(2), a, atol=1e-10) and torch.allclose(P.sum(1), b, atol=1e-10)
    assert torch.all(P >= 0) and torch.all(P[a == 0] == 0)
    assert torch.allclose((P * C.detach()).sum((1, 2)), r.transport_cost.detach(), rtol=1e-10)


def test_epsilon_too_large_for_rtol_is_halved_until_certified():
    C, a, b, mean, ref = _batch()
    eps = 0.05 * mean  # the entropic plan at this epsilon is ~1-2 % above exact OT
    r = batched_sinkhorn(C, a, b, eps, rtol=5e-3)
    assert r.converged
    assert torch.all(r.epsilon < eps)  # halved (at most three times) where the gap stalled
    assert torch.all((r.transport_cost - ref) / ref <= 5e-3 + 1e-9)


def test_uncertified_problems_say_so():
    C, a, b, mean, ref = _batch()
    r = batched_sinkhorn(C, a, b, 3e-3 * mean, rtol=5e-3, max_iter=2, check_every=1)
    assert not r.converged and r.gap > 5e-3
    assert torch.all(r.transport_cost >= ref * (1 - 1e-9))  # still a feasible plan's cost: an upper bound
    assert torch.all(r.lower <= ref * (1 + 1e-9))


def test_size_chunks_cover_each_pair_once_with_bounded_padding():
    g = torch.Generator().manual_seed(0)
    n1, n2 = torch.randint(5, 60, (40,), generator=g), torch.randint(5, 60, (40,), generator=g)
    chunks = _size_chunks(n1, n2, chunk_elements=20_000)
    assert sorted(torch.cat(chunks).tolist()) == list(range(40))
    for q in chunks:
        padded = len(q) * int(n1[q].max()) * int(n2[q].max())
        assert len(q) == 1 or (padded <= 20_000 and padded <= 1.5 * int((n1[q] * n2[q]).sum()))


def test_zero_feature_columns_and_the_per_batch_gram_path_change_nothing():
    g = torch.Generator().manual_seed(3)
    y1, y2 = torch.arange(90) % 3, torch.arange(70) % 3
    X1 = torch.randn(90, 4, generator=g, dtype=torch.float64) + y1[:, None].double()
    X2 = torch.randn(70, 4, generator=g, dtype=torch.float64) + 0.5 * y2[:, None].double()
    Z1 = torch.cat([torch.zeros(90, 3, dtype=torch.float64), X1], 1)  # columns zero on both sides
    Z2 = torch.cat([torch.zeros(70, 3, dtype=torch.float64), X2], 1)
    ref = exact_label_distances(X1, y1, 3, X2, y2, 3, method="emd")
    W = exact_label_distances(Z1, y1, 3, Z2, y2, 3)
    assert torch.all(W >= ref * (1 - 1e-5)) and torch.allclose(W, ref, rtol=5e-3 + 1e-5)
    # chunk_elements this small sends each batch through per-pair feature products, not a Gram matrix
    W_small = exact_label_distances(Z1, y1, 3, Z2, y2, 3, chunk_elements=1)
    assert torch.allclose(W_small, ref, rtol=5e-3 + 1e-5)
    # gradients reach the features, zero on the dropped columns
    Z1g = Z1.clone().requires_grad_(True)
    exact_label_distances(Z1g, y1, 3, Z2, y2, 3).sum().backward()
    assert torch.all(Z1g.grad[:, :3] == 0) and Z1g.grad[:, 3:].abs().sum() > 0
