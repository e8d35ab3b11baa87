"""Statistics for reporting success rates honestly (Wilson intervals, seeded bootstraps, rliable).

Definitions follow Agarwal et al., "Deep RL at the Edge of the Statistical Precipice" (rliable):
the interquartile mean (IQM) is the 25 %-trimmed mean of all run x task scores; intervals are
percentile bootstraps, stratified by task (runs are resampled within each task); the probability
of improvement is P(X > Y) per task, ties counting 1/2, averaged over tasks. Everything is seeded.
``rliable.metrics`` gives the same point estimates (the tests compare); rliable's bootstrap
(``rliable.library``) is not used: it fails to import with the installed ``arch`` and pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import sqrt

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as scipy_stats

from cohirl.errors import CohirlError

Scores = Mapping[str, ArrayLike]  # task -> per-run (per-seed) scores


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise CohirlError(f"confidence must lie strictly between 0 and 1, got {confidence}.")


def _as_scores(values: ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise CohirlError(f"{what}: no values given; pass at least one score.")
    if not np.all(np.isfinite(array)):
        raise CohirlError(f"{what}: scores contain NaN or inf: {array}.")
    return array


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial success rate ``successes / n``.

    (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), with z the two-sided normal quantile.
    """
    _check_confidence(confidence)
    if n <= 0 or not 0 <= successes <= n:
        raise CohirlError(f"Wilson interval needs 0 <= successes <= n and n > 0, got {successes}/{n}.")
    z = float(scipy_stats.norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)  # exact ends, no rounding error
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return low, high


def bootstrap_ci(
    values: ArrayLike, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the sample mean with a seeded percentile-bootstrap interval."""
    _check_confidence(confidence)
    array = _as_scores(values, "bootstrap_ci")
    means = _bootstrap_means(array, _check_n_boot(n_boot), np.random.default_rng(seed))
    return (float(array.mean()), *_percentile_interval(means, confidence))


def bootstrap_difference(
    x: ArrayLike, y: ArrayLike, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean(x) - mean(y), low, high): each sample resampled on its own (independent runs, e.g. two
    methods' seeds), a seeded percentile interval of the difference of means."""
    _check_confidence(confidence)
    a, b = _as_scores(x, "bootstrap_difference"), _as_scores(y, "bootstrap_difference")
    rng = np.random.default_rng(seed)
    diffs = _bootstrap_means(a, _check_n_boot(n_boot), rng) - _bootstrap_means(b, n_boot, rng)
    return (float(a.mean() - b.mean()), *_percentile_interval(diffs, confidence))


def _bootstrap_means(array: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples, drawn in blocks of about 2M indices to bound memory."""
    block = max(1, 2_000_000 // array.size)
    sizes = [min(block, n_boot - start) for start in range(0, n_boot, block)]
    blocks = [array[rng.integers(0, array.size, size=(size, array.size))].mean(axis=1) for size in sizes]
    return np.concatenate(blocks)


def _check_n_boot(n_boot: int) -> int:
    if n_boot < 1:
        raise CohirlError(f"n_boot must be >= 1, got {n_boot}.")
    return int(n_boot)


def iqm(values: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50 % (scipy's 25 %-trimmed mean, as rliable)."""
    return float(scipy_stats.trim_mean(_as_scores(values, "iqm"), 0.25))


def _stratified_resamples(scores: Scores, n_boot: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per task, an (n_boot, n_runs) matrix of that task's scores resampled with replacement."""
    out = {}
    for task in sorted(scores):  # fixed order keeps the draws reproducible
        runs = _as_scores(scores[task], f"task {task!r}")
        out[task] = runs[rng.integers(0, runs.size, size=(n_boot, runs.size))]
    return out


def stratified_bootstrap_iqm(
    scores: Scores, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(IQM, low, high) of all run x task scores, runs resampled within each task (rliable)."""
    _check_confidence(confidence)
    if not scores:
        raise CohirlError("stratified_bootstrap_iqm: no tasks given; pass {task: per-seed scores}.")
    point = iqm(np.concatenate([_as_scores(scores[task], f"task {task!r}") for task in sorted(scores)]))
    resampled = _stratified_resamples(scores, _check_n_boot(n_boot), np.random.default_rng(seed))
    pooled = np.concatenate([resampled[task] for task in sorted(resampled)], axis=1)
    samples = scipy_stats.trim_mean(pooled, 0.25, axis=1)
    return (point, *_percentile_interval(samples, confidence))


def _improvement_probability(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½·P(X = Y) over all pairs, along the last axis of x (..., n) and y (..., m)."""
    greater = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    ties = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return greater + 0.5 * ties


def probability_of_improvement(
    x: Scores, y: Scores, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(P(X > Y), low, high): rliable's probability of improvement of X over Y, averaged over tasks.

    The interval resamples the runs of X and of Y independently within each task.
    """
    _check_confidence(confidence)
    if not x or set(x) != set(y):
        raise CohirlError(
            f"probability_of_improvement needs the same non-empty task set for both methods, got "
            f"{sorted(x)} and {sorted(y)}; evaluate both methods on the same tasks."
        )
    tasks = sorted(x)
    point = np.mean([_improvement_probability(_as_scores(x[t], t), _as_scores(y[t], t)) for t in tasks])
    rng = np.random.default_rng(seed)
    n_boot = _check_n_boot(n_boot)
    x_samples, y_samples = _stratified_resamples(x, n_boot, rng), _stratified_resamples(y, n_boot, rng)
    samples = np.mean([_improvement_probability(x_samples[t], y_samples[t]) for t in tasks], axis=0)
    return (float(point), *_percentile_interval(samples, confidence))


def summarize_success(
    episodes: pd.DataFrame, confidence: float = 0.95, by: Sequence[str] = ("task", "method", "run_seed")
) -> pd.DataFrame:
    """Episode rows (``cohirl.eval.rollout.evaluate``) -> success rate with a Wilson interval per group.

    Columns: the ``by`` keys, n_episodes, successes, success_rate, ci_low, ci_high.
    """
    missing = [column for column in (*by, "success") if column not in episodes.columns]
    if missing:
        raise CohirlError(f"summarize_success: episode table lacks columns {missing}; pass evaluate()'s output.")
    grouped = episodes.groupby(list(by), sort=True)["success"]
    table = grouped.agg(n_episodes="size", successes="sum").reset_index()
    table["successes"] = table["successes"].astype("int64")
    table["success_rate"] = table["successes"] / table["n_episodes"]
    bounds = [wilson_interval(int(k), int(n), confidence) for k, n in zip(table["successes"], table["n_episodes"])]
    table["ci_low"] = [low for low, _ in bounds]
    table["ci_high"] = [high for _, high in bounds]
    return table
