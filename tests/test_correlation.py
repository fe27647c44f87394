"""Pearson / Spearman correlations with p-values, on cases with a known answer."""

from __future__ import annotations

import itertools
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


# ------------------------------------------------------------------ dataset-identity permutations
from otdata.correlation import bootstrap_seeds, permutation_test  # noqa: E402


def ordered_pairs(names):
    return [(s, t) for s in names for t in names if s != t]


def test_permutation_test_perfect_anticorrelation_has_the_smallest_possible_p():
    names = list("ABCDE")
    pairs = ordered_pairs(names)                       # 20 ordered pairs, 5! = 120 relabellings
    rng = np.random.default_rng(0)
    d = {frozenset(p): v for p, v in zip(itertools.combinations(names, 2), rng.random(10))}
    x = [d[frozenset(p)] for p in pairs]               # a symmetric distance, as the OTDD
    y = [-v for v in x]
    for method in ("pearson", "spearman"):
        for alternative in ("less", "two-sided"):
            result = permutation_test(pairs, x, y, method=method, alternative=alternative)
            assert result["exact"] and result["n_permutations"] == 120
            assert result["statistic"] == pytest.approx(-1.0)
            assert result["p_value"] == pytest.approx(1 / 120)  # only the identity is as extreme


def test_permutation_test_counts_a_hand_enumerated_case():
    # y = x = a[source] with a = (0, 1, 2): relabelling by π gives corr(a, a∘π) over the 3 sources:
    # identity 1, (0 2) -1, (0 1) and (1 2) 0.5, the two 3-cycles -0.5.
    a = {"A": 0.0, "B": 1.0, "C": 2.0}
    pairs = ordered_pairs(list(a))
    x = [a[s] for s, _ in pairs]
    assert permutation_test(pairs, x, x, "pearson", "two-sided")["p_value"] == pytest.approx(2 / 6)
    assert permutation_test(pairs, x, x, "pearson", "greater")["p_value"] == pytest.approx(1 / 6)
    assert permutation_test(pairs, x, x, "pearson", "less")["p_value"] == pytest.approx(1.0)


def test_permutation_test_keeps_only_relabellings_that_preserve_the_design():
    pairs = [("A", "B"), ("B", "C"), ("C", "A")]       # a directed cycle: only its rotations map onto it
    result = permutation_test(pairs, [1.0, 2.0, 3.0], [1.0, 3.0, 2.0], "pearson")
    assert result["n_permutations"] == 3


def test_permutation_test_random_relabellings_for_many_datasets():
    names = [f"d{i}" for i in range(9)]                # 9! is too many: random relabellings
    pairs = ordered_pairs(names)
    rng = np.random.default_rng(1)
    x, y = rng.random(len(pairs)), rng.random(len(pairs))
    first = permutation_test(pairs, x, y, n_permutations=300, seed=3)
    assert not first["exact"] and first["n_permutations"] == 300
    assert first == permutation_test(pairs, x, y, n_permutations=300, seed=3)
    assert 0.05 < first["p_value"] <= 1.0              # unrelated values: no evidence


def test_bootstrap_over_seeds_spans_the_per_seed_correlations():
    x = [1.0, 2.0, 3.0, 4.0]
    by_seed = [[-v for v in x], x]                     # seed 0: ρ = -1, seed 1: ρ = +1
    result = bootstrap_seeds(x, by_seed, n_boot=400)
    # replicates {0,0} → -1, {1,1} → +1, {0,1} → constant means (undefined, left out)
    assert result["spearman"] == pytest.approx([-1.0, 1.0]) and result["pearson"] == pytest.approx([-1.0, 1.0])
    same = bootstrap_seeds(x, [[4.0, 1.0, 3.0, 2.0]] * 3, n_boot=50)
    r = stats.pearsonr(x, [4.0, 1.0, 3.0, 2.0])[0]
    assert same["pearson"] == pytest.approx([r, r]) and same["n_seeds"] == 3


def test_unordered_pairs_permute_as_sets():
    names = list("ABCD")
    pairs = list(itertools.combinations(names, 2))     # 6 unordered pairs, all 24 relabellings valid
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.5]
    result = permutation_test(pairs, x, [-v for v in x], "pearson", "less", unordered=True)
    assert result["n_permutations"] == 24 and result["p_value"] == pytest.approx(1 / 24)


def test_pair_variance_splits_source_target_and_direction():
    from otdata.correlation import pair_variance

    names = list("ABCD")
    pairs = ordered_pairs(names)
    effect = {"A": 3.0, "B": -1.0, "C": 0.5, "D": -2.5}
    only_source = pair_variance(pairs, [effect[s] for s, _ in pairs])
    assert only_source["source"] == pytest.approx(1.0) and only_source["additive"] == pytest.approx(1.0)
    # y(s,t) = a(s) - a(t) flips sign with the direction: all of it is antisymmetric
    flips = pair_variance(pairs, [effect[s] - effect[t] for s, t in pairs])
    assert flips["antisymmetric"] == pytest.approx(1.0) and flips["additive"] == pytest.approx(1.0)
    # a symmetric y (a function of the unordered pair) has no antisymmetric part
    rng = np.random.default_rng(0)
    sym = {frozenset(p): v for p, v in zip(itertools.combinations(names, 2), rng.random(6))}
    assert pair_variance(pairs, [sym[frozenset(p)] for p in pairs])["antisymmetric"] == pytest.approx(0.0)
