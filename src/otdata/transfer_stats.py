"""Statistics of the transferability experiment: pure functions of its result rows.

A pair's row summarises its per-seed runs (:func:`summarize_pair`: transfer gain and relative drop
in test error, :func:`error_drop`); :func:`pair_statistics` relates every distance column to both
outcomes with the tools of :mod:`otdata.correlation` (correlations, dataset-permutation p-values,
bootstrap intervals over seeds, rank agreement with the OTDD). The task that produces the rows is
:mod:`otdata.tasks.transferability`.
"""

from __future__ import annotations

import math
import statistics

from otdata.correlation import bootstrap_seeds, correlate, permutation_test

#: The OTDD paper's *NIST result, for the record.
PAPER_SPEARMAN = -0.59


def error_drop(scratch_acc: float, tuned_acc: float) -> float:
    """Relative drop in test error (%) from scratch to fine-tuned: 100 (e_scratch − e_tuned) / e_scratch."""
    scratch_err = 100.0 - scratch_acc
    return 100.0 * (tuned_acc - scratch_acc) / scratch_err if scratch_err > 0 else math.nan


def summarize_pair(source: str, target: str, runs: list[dict], meta: dict) -> dict:
    """One table row: the seed averages (and standard deviations) of a pair's runs, plus `meta`."""
    def mean(k):
        return statistics.fmean(r[k] for r in runs)

    def std(k):
        return statistics.stdev([r[k] for r in runs]) if len(runs) > 1 else 0.0

    return {"pair": f"{source}→{target}", "source": source, "target": target,
            "scratch_acc": mean("scratch_acc"), "finetune_acc": mean("finetune_acc"),
            "gain": mean("gain"), "gain_std": std("gain"),
            "error_drop": mean("error_drop"), "error_drop_std": std("error_drop"),
            "head": runs[0]["head"], "n_finetune": runs[0]["n_finetune"], "seeds": len(runs),
            "status": "ok", **meta}


OUTCOMES = ("gain", "error_drop")


def pair_statistics(rows: list[dict], runs: list[dict], distance_keys: list[str]) -> list[dict]:
    """For every distance column and outcome: correlations, dataset-permutation p-values, bootstrap
    intervals over seeds and the distance's rank agreement with `otdd` over the unordered pairs."""
    done = [r for r in rows if r.get("status") == "ok"]
    pairs = [(r["source"], r["target"]) for r in done]
    by_seed: dict[int, dict[str, dict]] = {}
    for run in runs:
        by_seed.setdefault(run["seed"], {})[run["pair"]] = run
    complete = [s for s, got in sorted(by_seed.items()) if all(r["pair"] in got for r in done)]
    # pairs seen in both directions, for the direction-averaged outcome ("both ways")
    index = {(r["source"], r["target"]): i for i, r in enumerate(done)}
    both = [(s, t) for s, t in pairs if s < t and (t, s) in index]
    out = []
    for key in distance_keys:
        if not done or any(key not in r for r in done):
            continue
        x = [r[key] for r in done]
        unordered = {frozenset(p): r[key] for p, r in zip(pairs, done)}
        main = {frozenset(p): r["otdd"] for p, r in zip(pairs, done)}
        agree = correlate([main[k] for k in unordered], list(unordered.values()))
        for outcome in OUTCOMES:
            per_seed = [[by_seed[s][r["pair"]][outcome] for r in done] for s in complete]
            variants = [(outcome, pairs, x, [r[outcome] for r in done], per_seed, False)]
            if len(both) >= 3:
                def fold(values):  # mean of the two directions of each unordered pair
                    return [(values[index[(s, t)]] + values[index[(t, s)]]) / 2 for s, t in both]
                variants.append((f"{outcome} (both ways)", both, fold(x), fold([r[outcome] for r in done]),
                                 [fold(v) for v in per_seed], True))

            def within(values, side):  # minus the mean over the pairs that share this side's dataset
                means = {d: statistics.fmean(v for v, r in zip(values, done) if r[side] == d)
                         for d in {r[side] for r in done}}
                return [v - means[r[side]] for v, r in zip(values, done)]
            # within target: which source suits this target best; within source: which target this
            # source serves best (the source's own strength, which no distance sees, taken out)
            for side in ("target", "source"):
                variants.append((f"{outcome} (within {side})", pairs, x, within([r[outcome] for r in done], side),
                                 [within(v, side) for v in per_seed], False))
            for name, keys, xs, ys, seeds_y, sym in variants:
                c = correlate(xs, ys)
                entry = {"distance": key, "outcome": name, **{k: c[k] for k in
                         ("n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p")}}
                if c["n"] >= 3 and math.isfinite(c["pearson_r"]):
                    for method in ("pearson", "spearman"):
                        for alt, tag in (("two-sided", ""), ("less", "_less")):
                            test = permutation_test(keys, xs, ys, method=method, alternative=alt, unordered=sym)
                            entry[f"{method}_perm_p{tag}"] = test["p_value"]
                        entry["n_permutations"] = test["n_permutations"]
                    if len(complete) > 1:
                        ci = bootstrap_seeds(xs, seeds_y)
                        entry["pearson_ci"], entry["spearman_ci"] = ci["pearson"], ci["spearman"]
                entry["rank_vs_otdd"] = agree["spearman_rho"]
                out.append(entry)
    return out


STAT_COLUMNS = ["distance", "outcome", "n", "pearson_r", "pearson_p", "pearson_perm_p", "pearson_ci",
                "spearman_rho", "spearman_p", "spearman_perm_p", "spearman_perm_p_less", "spearman_ci",
                "rank_vs_otdd", "seconds_per_pair"]


def rounded(entry: dict) -> dict:
    """A statistics row for reading: coefficients to 2 decimals, p-values to 2 significant digits."""
    def fmt(key, value):
        if isinstance(value, list):
            return "[" + ", ".join(f"{v:.2f}" for v in value) + "]"
        if isinstance(value, float) and math.isfinite(value):
            return f"{value:.2g}" if "_p" in key else f"{value:.2f}"
        return value
    return {k: fmt(k, v) for k, v in entry.items()}
