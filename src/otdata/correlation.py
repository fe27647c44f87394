"""How strongly two lists of numbers go together: Pearson's r and Spearman's ρ, with p-values.

Used to relate dataset distances to transfer gains (`experiment=transferability`). The numbers come
from `scipy.stats`; this module only handles the edge cases (too few points, constant input, NaNs)
and returns one plain dict that goes straight into JSON.

    >>> correlate([1, 2, 3, 4], [10, 20, 30, 40])["spearman_rho"]
    1.0
"""

from __future__ import annotations

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
