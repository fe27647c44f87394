"""Sliced OTDD: the 1-D OT against POT's exact solver, the moment-transform projection against a
hand computation, and the properties a dataset distance must have."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from otdata.distance import DistanceResult, SlicedDatasetDistance, distance_matrix
from otdata.distance.sliced import zero_truncated_poisson
from otdata.ot.sliced import w_pp_sorted


def emd2_1d(a: np.ndarray, b: np.ndarray, p: float) -> float:
    """Exact OT cost between uniform 1-D samples by POT's network simplex (the reference)."""
    M = np.abs(a[:, None] - b[None, :]) ** p
    return float(ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), M))


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("n, m", [(37, 37), (37, 23)])
def test_one_dimensional_unlabeled_is_exact_ot(p, n, m):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 1, generator=g, dtype=torch.float64), 2 * torch.rand(m, 1, generator=g, dtype=torch.float64)
    dd = SlicedDatasetDistance(n_projections=3, p=p, dtype=torch.float64)  # in 1-D every slice is +-1
    res = dd(x, None, y, None)
    assert res.value == pytest.approx(emd2_1d(x[:, 0].numpy(), y[:, 0].numpy(), p), rel=1e-9)


def test_w_pp_sorted_batched_matches_emd2_per_slice():
    g = torch.Generator().manual_seed(2)
    u, v = torch.randn(11, 4, generator=g, dtype=torch.float64), torch.randn(7, 4, generator=g, dtype=torch.float64) + 1
    got = w_pp_sorted(u.T.sort(1)[0], v.T.sort(1)[0], 2.0)
    want = [emd2_1d(u[:, l].numpy(), v[:, l].numpy(), 2.0) for l in range(4)]
    assert got.numpy() == pytest.approx(want, rel=1e-9)


def test_labeled_projection_matches_hand_computed_moment_transform():
    """One slice: z = psi0 <theta,x> + sum_j psi_j E_class[<theta,x>^k_j] / k_j!, then exact 1-D OT."""
    g = torch.Generator().manual_seed(3)
    X1, y1 = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2] * 10)
    X2, y2 = torch.randn(24, 3, generator=g, dtype=torch.float64) + 0.5, torch.tensor([5, 7] * 12)
    dd = SlicedDatasetDistance(n_projections=1, n_moments=4, dtype=torch.float64, seed=7)
    theta, psi, k = (t.numpy() for t in dd.slices(3))

    def project(X, y):
        P = X.numpy() @ theta[:, 0]
        z = psi[0, 0] * P
        for c in np.unique(y.numpy()):
            rows = y.numpy() == c
            z[rows] += sum(psi[0, 1 + j] * np.mean(P[rows] ** k[0, j]) / math.factorial(int(k[0, j]))
                           for j in range(4))
        return z

    res = dd(X1, y1, X2, y2)
    assert res.value == pytest.approx(emd2_1d(project(X1, y1), project(X2, y2), 2.0), rel=1e-9)
    assert (k >= 1).all()


def test_labels_matter_and_identity_gives_zero():
    g = torch.Generator().manual_seed(4)
    X = torch.cat([torch.randn(50, 5, generator=g), torch.randn(50, 5, generator=g) + 3])
    y = torch.tensor([0] * 50 + [1] * 50)
    dd = SlicedDatasetDistance(n_projections=200)
    assert dd(X, y, X, y).value == pytest.approx(0.0, abs=1e-12)
    relabelled = dd(X, y, X, y + 10)  # label values do not matter, only the class partition
    assert relabelled.value == pytest.approx(0.0, abs=1e-12)
    # a label is its class-conditional distribution: exchanging the names of the clusters changes
    # nothing, but the same points partitioned across the clusters form another dataset
    assert dd(X, y, X, 1 - y).value == pytest.approx(0.0, abs=1e-12)
    mixed = dd(X, y, X, torch.arange(100) % 2).value
    assert dd(X, None, X, None).value == pytest.approx(0.0, abs=1e-12) and mixed > 1e-3


def test_call_forms_result_and_distance_matrix(tmp_path):
    g = torch.Generator().manual_seed(5)
    data = {name: (torch.rand(80, 6, generator=g) + shift, torch.randint(0, 3, (80,), generator=g))
            for name, shift in [("a", 0.0), ("b", 0.2), ("c", 1.0)]}
    dd = SlicedDatasetDistance(n_projections=64, n_moments=3)
    direct = dd(*data["a"], *data["c"], class_names1=["x", "y", "z"])
    prepared = dd(dd.prepare(*data["a"], name="a"), dd.prepare(*data["c"], name="c"))
    assert isinstance(direct, DistanceResult) and direct.value == pytest.approx(prepared.value, rel=1e-6)
    assert direct.class_names1 == ["x", "y", "z"] and direct.n1 == direct.n2 == 80
    assert 0 < direct.std_error < direct.value and direct.settings["n_projections"] == 64
    assert dd.debiased is False and direct.divergence is None
    m = distance_matrix(data, dd, cache_dir=tmp_path)
    assert m.values[0, 2] == pytest.approx(direct.value, rel=1e-6) and m.values[2, 0] == m.values[0, 2]
    assert m.values[0, 1] < m.values[0, 2]  # a shift of 0.2 is closer than a shift of 1
    again = distance_matrix(data, dd, cache_dir=tmp_path)
    assert again.cached[0][2] and torch.equal(again.values, m.values)


def test_slices_are_seeded_and_the_estimate_converges():
    g = torch.Generator().manual_seed(6)
    X1, y1 = torch.randn(300, 10, generator=g), torch.randint(0, 4, (300,), generator=g)
    X2, y2 = torch.randn(300, 10, generator=g) * 1.5, torch.randint(0, 4, (300,), generator=g)
    values = [SlicedDatasetDistance(n_projections=2000, seed=s)(X1, y1, X2, y2) for s in (0, 0, 1)]
    assert values[0].value == values[1].value
    spread = math.hypot(values[0].std_error, values[2].std_error)
    assert abs(values[0].value - values[2].value) < 4 * spread  # two independent Monte Carlo estimates


def test_prepared_with_other_settings_is_refused():
    X, y = torch.rand(20, 4), torch.randint(0, 2, (20,))
    a = SlicedDatasetDistance(n_projections=10, seed=0).prepare(X, y)
    with pytest.raises(ValueError, match="settings|slices"):
        SlicedDatasetDistance(n_projections=10, seed=1)(a, a)


def test_zero_truncated_poisson_has_the_conditional_mean():
    rng = np.random.default_rng(0)
    rates = np.full(200_000, 2.0)
    draws = zero_truncated_poisson(rates, rng)
    assert draws.min() >= 1
    assert draws.mean() == pytest.approx(2.0 / (1 - math.exp(-2.0)), rel=0.01)  # E[N | N >= 1]
