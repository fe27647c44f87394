"""How strongly two lists of numbers go together: Pearson's r and Spearman's ρ, with p-values.

Used to relate dataset distances to transfer gains (`experiment=transferability`). `correlate` takes
its numbers from `scipy.stats` and handles the edge cases (too few points, constant input, NaNs).
Pairs of datasets are not independent observations, so two further statistics fit them better:
`permutation_test` (Mantel-style: relabels the datasets) and `bootstrap_seeds` (intervals over the
experiment's seeds). Each returns one plain dict that goes straight into JSON.

    >>> correlate([1, 2, 3, 4], [10, 20, 30, 40])["spearman_rho"]
    1.0
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

#: Fewest points for which a correlation and its p-value are reported.
MIN_POINTS = 3


def _nan_result(n: int, note: str) -> dict:
    return {"n": n, "pearson_r": math.nan, "pearson_p": math.nan, "spearman_rho": math.nan,
            "spearman_p": math.nan, "note": note}


def correlate(x: Sequence[float], y: Sequence[float]) -> dict:
    """Pearson's r and Spearman's ρ between `x` and `y`, each with its two-sided p-value.

    Pairs where either value is NaN or infinite are dropped first. With fewer than 3 points left, or
    when either side is constant, every number is NaN and `note` says why. The p-values are scipy's:
    the exact t-based test for Pearson (normal data assumed) and the t approximation for Spearman,
    both weak evidence with a handful of points.

    Returns: `{"n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "note"}`.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d and of the same length, got {x.shape} and {y.shape}.")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(len(x))
    if n < MIN_POINTS:
        return _nan_result(n, f"{n} finite point(s): at least {MIN_POINTS} are needed.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return _nan_result(n, "one of the two lists is constant: no correlation is defined.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about small n; the note below says it
        pearson = stats.pearsonr(x, y)
        spearman = stats.spearmanr(x, y)
    note = "" if n >= 10 else f"only {n} points: the p-values are weak evidence."
    return {"n": n, "pearson_r": float(pearson[0]), "pearson_p": float(pearson[1]),
            "spearman_rho": float(spearman[0]), "spearman_p": float(spearman[1]), "note": note}


def describe(result: dict) -> str:
    """One line for logs and plot titles, e.g. `Pearson r = -0.61 (p = 0.20), Spearman ρ = ... (n = 6)`."""
    def number(value: float, fmt: str) -> str:
        return "nan" if not math.isfinite(value) else format(value, fmt)

    return (f"Pearson r = {number(result['pearson_r'], '.2f')} (p = {number(result['pearson_p'], '.2g')}), "
            f"Spearman ρ = {number(result['spearman_rho'], '.2f')} "
            f"(p = {number(result['spearman_p'], '.2g')}), n = {result['n']}")


# ---------------------------------------------------------------------------------------------
# Statistics for pairs of datasets: the pairs share datasets (and models), so they are not
# independent observations and the p-values above overstate the evidence.

def _statistic(x: np.ndarray, y: np.ndarray, method: str) -> float:
    if method == "pearson":
        return float(np.corrcoef(x, y)[0, 1])
    if method == "spearman":
        return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])
    raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")


def permutation_test(pairs: Sequence[tuple[str, str]], x: Sequence[float], y: Sequence[float],
                     method: str = "spearman", alternative: str = "two-sided",
                     n_permutations: int = 10_000, seed: int = 0, unordered: bool = False) -> dict:
    """Mantel-style test of the correlation between `x` and `y` over dataset pairs.

    `pairs[i] = (source, target)` names the datasets of observation `i`. Under the null hypothesis
    the datasets are exchangeable: relabelling them by a permutation `π` turns the value `y` of
    pair `(s, t)` into the value of `(π(s), π(t))`, which keeps every dependence among pairs that
    share a dataset (the same source model, the same target sample, a symmetric distance seen from
    both directions). Only the permutations that map every observed pair onto an observed pair are
    used; for a complete set of ordered (or unordered) pairs that is all of them. With at most 8
    datasets every permutation is enumerated (the p-value is exact), otherwise `n_permutations`
    random ones are drawn (seeded). p = share of permutations whose statistic is at least as extreme
    as the observed one (the identity counts, so p >= 1 / #permutations).

    `alternative`: "two-sided" (|r|), "less" (the papers' hypothesis: distance and gain go in
    opposite directions) or "greater". `unordered`: the pairs are sets ({s, t} = {t, s}), e.g. values
    averaged over both directions. Returns `{"statistic", "p_value", "n_permutations", "exact",
    "n_datasets", "method", "alternative"}`.
    """
    canon = (lambda s, t: tuple(sorted((s, t)))) if unordered else (lambda s, t: (s, t))
    keys = [canon(str(s), str(t)) for s, t in pairs]
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (len(keys) == len(x) == len(y)):
        raise ValueError(f"pairs, x and y differ in length: {len(keys)}, {len(x)}, {len(y)}")
    if len(set(keys)) != len(keys):
        raise ValueError("a (source, target) pair is listed twice")
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    names = sorted({n for pair in keys for n in pair})
    where = {pair: i for i, pair in enumerate(keys)}
    observed = _statistic(x, y, method)

    def extreme(value: float) -> bool:
        tol = 1e-12
        if alternative == "less":
            return value <= observed + tol
        if alternative == "greater":
            return value >= observed - tol
        return abs(value) >= abs(observed) - tol

    exact = len(names) <= 8
    if exact:
        perms = itertools.permutations(range(len(names)))
    else:
        rng = np.random.default_rng(seed)
        perms = itertools.chain([tuple(range(len(names)))],
                                (tuple(rng.permutation(len(names))) for _ in range(n_permutations - 1)))
    used = hits = 0
    for perm in perms:
        image = {names[i]: names[j] for i, j in enumerate(perm)}
        index = [where.get(canon(image[s], image[t])) for s, t in keys]
        if any(i is None for i in index):
            continue  # this relabelling leaves the observed design: not a null draw
        used += 1
        hits += extreme(_statistic(x, y[index], method))
    return {"statistic": observed, "p_value": hits / used, "n_permutations": used, "exact": exact,
            "n_datasets": len(names), "method": method, "alternative": alternative}


def bootstrap_seeds(x: Sequence[float], y_by_seed: Sequence[Sequence[float]], n_boot: int = 2000,
                    level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap intervals of Pearson's r and Spearman's ρ over seeds.

    `y_by_seed[s][i]`: the value (e.g. the transfer gain) of pair `i` under seed `s`; a seed is one
    draw of everything random in the experiment (target sample, initialisations), shared by all
    pairs. Each replicate draws the seeds with replacement — the same draw for every pair, which
    keeps the pairs' dependence through a shared seed — averages them per pair and correlates the
    means with `x`. With S seeds there are only C(2S-1, S) distinct replicates (10 for S = 3), so the
    interval shows the spread due to the seeds, not the one due to the choice of datasets (that is
    what `permutation_test` addresses).

    Returns `{"pearson": [lo, hi], "spearman": [lo, hi], "level", "n_boot", "n_seeds"}`; NaN bounds
    when a replicate's correlation is undefined for every draw.
    """
    x = np.asarray(x, dtype=float)
    Y = np.asarray(y_by_seed, dtype=float)
    if Y.ndim != 2 or Y.shape[1] != len(x):
        raise ValueError(f"y_by_seed must be (seeds, pairs) with {len(x)} pairs, got shape {Y.shape}")
    rng = np.random.default_rng(seed)
    S = Y.shape[0]
    draws = rng.integers(0, S, size=(n_boot, S))
    out: dict = {"level": level, "n_boot": n_boot, "n_seeds": S}
    for method in ("pearson", "spearman"):
        values = []
        for draw in draws:
            mean = Y[draw].mean(0)
            if np.ptp(mean) > 0 and np.ptp(x) > 0:
                values.append(_statistic(x, mean, method))
        if values:
            lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
            out[method] = [float(lo), float(hi)]
        else:
            out[method] = [math.nan, math.nan]
    return out


def pair_variance(pairs: Sequence[tuple[str, str]], y: Sequence[float]) -> dict:
    """How much of an outcome over ordered dataset pairs a distance between the two datasets could
    explain at all: shares of its variance (sum of squares about the mean) that are

    - `source`, `target`: explained by the source alone / the target alone (one mean per dataset);
    - `additive`: by a source effect plus a target effect (least squares);
    - `antisymmetric`: the part `(y(s,t) - y(t,s)) / 2` that flips sign with the direction, which
      no symmetric distance (the OTDD is one) can follow (pairs seen in both directions only).
    """
    keys = [(str(s), str(t)) for s, t in pairs]
    y = np.asarray(y, dtype=float)
    total = float(((y - y.mean()) ** 2).sum())
    names = sorted({n for pair in keys for n in pair})
    col = {n: i for i, n in enumerate(names)}
    S = np.zeros((len(keys), len(names)))
    T = np.zeros((len(keys), len(names)))
    for i, (s, t) in enumerate(keys):
        S[i, col[s]] = 1.0
        T[i, col[t]] = 1.0

    def share(design: np.ndarray) -> float:
        A = np.column_stack([np.ones(len(y)), design])
        fit = A @ np.linalg.lstsq(A, y, rcond=None)[0]
        return float(((fit - y.mean()) ** 2).sum() / total) if total > 0 else math.nan

    where = {pair: i for i, pair in enumerate(keys)}
    anti = [(y[i] - y[where[(t, s)]]) / 2 for i, (s, t) in enumerate(keys) if (t, s) in where]
    return {"n": len(keys), "source": share(S), "target": share(T), "additive": share(np.hstack([S, T])),
            "antisymmetric": float(np.sum(np.square(anti)) / total) if total > 0 else math.nan}
