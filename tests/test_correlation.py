"""Pearson / Spearman correlations with p-values, on cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from otdata.correlation import correlate, describe


def test_perfectly_monotone_is_spearman_one():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    result = correlate(x, [v ** 3 for v in x])  # monotone, not linear
    assert result["spearman_rho"] == pytest.approx(1.0)
    assert result["spearman_p"] == pytest.approx(0.0, abs=1e-6)
    assert 0.9 < result["pearson_r"] < 1.0
    reverse = correlate(x, [-v for v in x])
    assert reverse["spearman_rho"] == pytest.approx(-1.0) and reverse["pearson_r"] == pytest.approx(-1.0)


def test_pearson_matches_a_hand_computed_example():
    # x = 1, 2, 3, y = 1, 3, 2: deviations (-1, 0, 1) and (-1, 1, 0) → r = 1 / (√2 · √2) = 0.5
    result = correlate([1, 2, 3], [1, 3, 2])
    assert result["pearson_r"] == pytest.approx(0.5)
    # closed form: t = r √(n-2) / √(1-r²) with n-2 = 1 degree of freedom → p = 1 - 2/π · atan(|t|)
    t = 0.5 / math.sqrt(1 - 0.25)
    assert result["pearson_p"] == pytest.approx(1 - 2 / math.pi * math.atan(t))
    assert result["spearman_rho"] == pytest.approx(0.5)  # the ranks are the values
    assert result["n"] == 3 and "weak" in result["note"]


def test_p_values_agree_with_scipy_on_noisy_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = -0.6 * x + rng.normal(scale=0.8, size=12)
    result = correlate(x, y)
    assert result["pearson_r"] == pytest.approx(stats.pearsonr(x, y)[0])
    assert result["pearson_p"] == pytest.approx(stats.pearsonr(x, y)[1])
    assert result["spearman_rho"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert result["spearman_p"] == pytest.approx(stats.spearmanr(x, y)[1])
    assert result["note"] == ""


def test_nan_pairs_are_dropped_and_degenerate_input_gives_nan():
    result = correlate([1, 2, float("nan"), 3, 4], [2, 4, 5, 6, float("inf")])
    assert result["n"] == 3 and result["spearman_rho"] == pytest.approx(1.0)
    assert math.isnan(correlate([1, 2], [3, 4])["pearson_r"])
    constant = correlate([1, 1, 1, 1], [1, 2, 3, 4])
    assert math.isnan(constant["spearman_rho"]) and "constant" in constant["note"]
    assert "nan" in describe(constant)
    with pytest.raises(ValueError):
        correlate([1, 2, 3], [1, 2])
