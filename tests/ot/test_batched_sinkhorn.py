"""Batched entropic OT and the exact label distances built on it, against POT's exact solver."""

import ot
import pytest
import torch

from otdata.distance import DatasetDistance, exact_label_distances
from otdata.distance.labels import EXACT_RTOL
from otdata.ot.batched import batched_sinkhorn


def _clouds(B, n, m, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, n, d, generator=g, dtype=torch.float64)
    Y = 1.5 * torch.randn(B, m, d, generator=g, dtype=torch.float64) + 0.3
    return X, Y, torch.cdist(X, Y) ** 2


def test_batched_costs_match_emd2_with_padding():
    X, Y, C = _clouds(6, 30, 25)
    a = torch.full((6, 30), 1 / 30, dtype=torch.float64)
    b = torch.full((6, 25), 1 / 25, dtype=torch.float64)
    a[:3, 20:], a[:3, :20] = 0, 1 / 20  # three problems padded to the batch's size
    b[3:, 10:], b[3:, :10] = 0, 1 / 10
    mean = (a.unsqueeze(2) * C * b.unsqueeze(1)).sum((1, 2))
    r = batched_sinkhorn(C, a, b, 3e-3 * mean, tol=1e-3)
    ref = torch.tensor([ot.emd2(a[k][a[k] > 0].numpy(), b[k][b[k] > 0].numpy(),
                                C[k][a[k] > 0][:, b[k] > 0].numpy()) for k in range(6)], dtype=torch.float64)
    assert r.converged
    assert torch.all(r.transport_cost >= ref * (1 - 1e-3))  # no plan beats exact OT (up to the marginal error)
    assert torch.allclose(r.transport_cost, ref, rtol=1e-2)


def test_batched_gradient_is_the_coupling():
    _, _, C = _clouds(2, 8, 7)
    C = C.clone().requires_grad_(True)
    a = torch.full((2, 8), 1 / 8, dtype=torch.float64)
    b = torch.full((2, 7), 1 / 7, dtype=torch.float64)
    r = batched_sinkhorn(C, a, b, torch.tensor([0.05, 0.05], dtype=torch.float64), tol=1e-10)
    r.transport_cost.sum().backward()
    P = C.grad
    assert torch.allclose(P.sum(2), a, atol=1e-8) and torch.allclose(P.sum(1), b, atol=1e-8)


def _labeled(n, d=5, C=4, seed=1, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    X = torch.randn(n, d, generator=g, dtype=torch.float64) + y[:, None].double() * 0.7 + shift
    return X, y


@pytest.mark.parametrize("p", [2, 1])
def test_exact_label_distances_batched_agree_with_emd(p):
    X1, y1 = _labeled(150)
    X2, y2 = _labeled(110, seed=2, shift=0.4)
    W = exact_label_distances(X1, y1, 4, X2, y2, 4, p=p, method="batched")
    ref = exact_label_distances(X1, y1, 4, X2, y2, 4, p=p, method="emd")
    assert torch.allclose(W, ref, rtol=1e-2)
    # self term: only i < j solved, exact zero diagonal, symmetric, equal to the full emd matrix
    Ws = exact_label_distances(X1, y1, 4, X1, y1, 4, p=p, method="batched", symmetric=True)
    ref_s = exact_label_distances(X1, y1, 4, X1, y1, 4, p=p, method="emd")
    assert torch.equal(Ws, Ws.T) and torch.all(torch.diagonal(Ws) == 0)
    assert torch.allclose(Ws, ref_s, rtol=1e-2, atol=1e-6)  # emd diagonal: sqrt of round-off for p=1


def test_chunked_batches_give_the_same_matrix():
    X1, y1 = _labeled(120)
    X2, y2 = _labeled(90, seed=3)
    W = exact_label_distances(X1, y1, 4, X2, y2, 4, method="batched")
    W1 = exact_label_distances(X1, y1, 4, X2, y2, 4, method="batched", chunk_elements=1)  # one pair per batch
    # each value is certified within EXACT_RTOL above exact OT, whatever batch it was solved in; a
    # misplaced pair is off by far more
    assert torch.allclose(W, W1, rtol=EXACT_RTOL)


def test_result_says_which_label_solver_it_used():
    X1, y1 = _labeled(60)
    X2, y2 = _labeled(50, seed=2)
    kw = dict(label_distance="exact", debiased=False, relative=False, epsilon=0.5)
    assert DatasetDistance(**kw)(X1, y1, X2, y2).settings["label_solver"] == "exact:batched"
    assert DatasetDistance(exact_method="emd", **kw)(X1, y1, X2, y2).settings["label_solver"] == "exact:emd"
    assert DatasetDistance(relative=False, epsilon=0.5)(X1, y1, X2, y2).settings["label_solver"] == "gaussian"
    with pytest.raises(ValueError, match="exact_method"):
        DatasetDistance(exact_method="simplex")
