"""The solver's contract: a number that is right, or one that says loudly that it is not.

References are independent: POT's exact ``ot.emd2`` on the same cost matrix, the cost of the
independent coupling (an upper bound of any entropic plan's cost), float64 against float32, and the
zero divergence of a dataset with itself."""

import warnings

import pytest
import torch
import yaml

from otdata.config import CONFIG_DIR
from otdata.distance import DatasetDistance
from otdata.ot import ConvergenceError, ConvergenceWarning, PointCloudCost, SinkhornConfig, emd2, sinkhorn


def _clouds(n=60, m=50, d=6, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64) * scale
    y = (torch.rand(m, d, generator=g, dtype=torch.float64) + 0.3) * scale
    lx = torch.randint(0, 3, (n,), generator=g)
    ly = torch.randint(0, 3, (m,), generator=g)
    return x, lx, y, ly


@pytest.mark.parametrize("scale", [1.0, 255.0, 1e4])
@pytest.mark.parametrize("rel", [1e-3, 1e-2, 0.05, 0.1, 1.0, 10.0])
def test_value_between_exact_ot_and_the_independent_coupling_in_fp32_and_fp64(rel, scale):
    x, _, y, _ = _clouds(scale=scale)
    values = {}
    for dt in (torch.float32, torch.float64):
        cost = PointCloudCost(x.to(dt), y.to(dt))
        a = torch.full((x.shape[0],), 1 / x.shape[0], dtype=dt)
        b = torch.full((y.shape[0],), 1 / y.shape[0], dtype=dt)
        upper = cost.mean_value(a, b)
        r = sinkhorn(None, None, cost, SinkhornConfig(epsilon=rel).absolute_epsilon(upper))
        assert r.converged
        P = r.coupling()
        assert torch.isfinite(P).all()
        assert float((P.sum(1) - a).abs().sum()) < 1e-3 and float((P.sum(0) - b).abs().sum()) < 1e-3
        values[dt] = float(r.transport_cost)
        exact = emd2(cost.dense().double())
        assert exact * (1 - 1e-4) <= values[dt] <= upper * (1 + 1e-3)
        if rel == 1e-3:  # small epsilon: within 1 % of exact OT
            assert values[dt] == pytest.approx(exact, rel=1e-2)
    assert values[torch.float32] == pytest.approx(values[torch.float64], rel=1e-3)


def test_debiased_divergence_of_a_dataset_with_itself_is_zero():
    x, lx, _, _ = _clouds()
    r = DatasetDistance()(x, lx, x.clone(), lx.clone())
    assert r.converged
    assert abs(r.divergence) < 1e-6 * r.cost_scale


def test_dataset_distance_reports_the_absolute_epsilon_it_used():
    x, lx, y, ly = _clouds()
    r = DatasetDistance(epsilon=0.02)(x, lx, y, ly)
    assert r.epsilon_relative == 0.02
    assert r.epsilon == pytest.approx(0.02 * r.cost_scale)
    assert r.value <= r.cost_scale
    ra = DatasetDistance(epsilon=0.5, relative=False)(x, lx, y, ly)
    assert ra.epsilon == 0.5 and ra.epsilon_relative is None


def test_unconverged_solve_warns_with_the_numbers_and_strict_raises():
    x, _, y, _ = _clouds()
    cost = PointCloudCost(x, y)
    with pytest.warns(ConvergenceWarning, match=r"epsilon=.*iterations, L1 marginal error .* > tol"):
        r = sinkhorn(None, None, cost, 1e-3, max_iter=2)
    assert not r.converged and r.escalated
    with pytest.raises(ConvergenceError, match="did not converge"):
        sinkhorn(None, None, cost, 1e-3, max_iter=2, strict=True)
    with pytest.raises(ConvergenceError):
        DatasetDistance(epsilon=1e-4, max_iter=2, strict=True)(x, None, y, None)


def test_converged_solve_stays_quiet():
    x, _, y, _ = _clouds()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert sinkhorn(None, None, PointCloudCost(x, y), 0.05).converged


def test_overflowing_features_are_refused_at_once():
    x, _, y, _ = _clouds()
    with pytest.raises(ValueError, match="not finite.*rescale the features"):
        sinkhorn(None, None, PointCloudCost(x.float() * 1e20, y.float() * 1e20), 0.1)
    with pytest.raises(ValueError, match="not finite"):
        DatasetDistance()(x.float() * 1e20, None, y.float() * 1e20, None)


def test_float32_kernel_that_would_underflow_still_gives_a_finite_coupling():
    """Costs of ~1e4 at epsilon 20: C / epsilon ~ 500, far beyond float32's exp(-87)."""
    x, _, y, _ = _clouds(scale=100.0)
    r = sinkhorn(None, None, PointCloudCost(x.float(), y.float()), 20.0)
    P = r.coupling()
    assert r.converged and torch.isfinite(P).all()
    assert float((P.sum(1) - 1 / x.shape[0]).abs().sum()) < 1e-3


def test_yaml_solver_values_are_the_python_defaults():
    """A default is declared once: conf/distance may repeat it only with the same value."""
    cfg = yaml.safe_load((CONFIG_DIR / "distance" / "gaussian.yaml").read_text())
    defaults = SinkhornConfig()
    for key in SinkhornConfig.__dataclass_fields__:
        if key in cfg:
            assert cfg[key] == getattr(defaults, key), key


@pytest.mark.parametrize("overrelax", [1.0, 1.8])
def test_converged_plan_meets_both_marginals_within_tol(overrelax):
    """A converged plan meets both marginals within tol, over-relaxed or not (an over-relaxed pair
    enforces neither marginal exactly), at a small epsilon where hundreds of iterations run."""
    x, _, y, _ = _clouds(n=300, m=250)
    C = PointCloudCost(x.float(), y.float(), 2).dense()
    tol = 1e-4
    r = sinkhorn(None, None, C, 1e-3 * float(C.mean()), tol=tol, max_iter=20_000, overrelax=overrelax,
                 backend="dense")
    assert r.converged
    P = r.coupling()
    rows = float((P.sum(1) - r.a).abs().sum())
    cols = float((P.sum(0) - r.b).abs().sum())
    assert max(rows, cols) < 1.2 * tol  # (the plan rebuilt from the gauge-shifted potentials)
