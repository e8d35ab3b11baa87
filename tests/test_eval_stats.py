"""Statistics against hand-computed values and rliable's own point estimates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from rliable import metrics as rliable_metrics

from cohirl.errors import CohirlError
from cohirl.eval.stats import (
    bootstrap_ci,
    iqm,
    probability_of_improvement,
    stratified_bootstrap_iqm,
    summarize_success,
    wilson_interval,
)

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def _wilson_by_quadratic(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Roots in p of (k/n - p)^2 = z^2 p (1 - p) / n -- the Wilson interval's defining equation."""
    p_hat = k / n
    a, b, c = 1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize("k,n", [(8, 10), (0, 10), (10, 10), (47, 50), (1, 3)])
def test_wilson_matches_the_quadratic_roots(k: int, n: int) -> None:
    expected = _wilson_by_quadratic(k, n)
    assert wilson_interval(k, n) == pytest.approx(expected, abs=1e-12)


def test_wilson_known_values_and_exact_ends() -> None:
    assert wilson_interval(8, 10) == pytest.approx((0.4901625, 0.9433178), abs=1e-6)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775328, abs=1e-6))
    assert wilson_interval(10, 10) == (pytest.approx(0.7224672, abs=1e-6), 1.0)
    low99, high99 = wilson_interval(8, 10, confidence=0.99)
    assert low99 < 0.4901625 and high99 > 0.9433178
    for bad in ((11, 10), (-1, 10), (0, 0)):
        with pytest.raises(CohirlError):
            wilson_interval(*bad)
    with pytest.raises(CohirlError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    sample = np.random.default_rng(123).normal(2.0, 1.0, size=200)
    mean, low, high = bootstrap_ci(sample, n_boot=4000, seed=7)
    assert (mean, low, high) == bootstrap_ci(sample, n_boot=4000, seed=7)
    assert (low, high) != bootstrap_ci(sample, n_boot=4000, seed=8)[1:]
    assert mean == pytest.approx(sample.mean()) and low < mean < high
    # for a normal sample the percentile interval is close to mean ± z·s/√n
    half_width = Z95 * sample.std(ddof=1) / math.sqrt(sample.size)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    assert bootstrap_ci([0.3, 0.3, 0.3], n_boot=50) == (pytest.approx(0.3),) * 3
    with pytest.raises(CohirlError, match="no values"):
        bootstrap_ci([])


def test_iqm_of_known_arrays() -> None:
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([0.0, 0.0, 1.0, 1.0, 100.0, -100.0, 0.5, 0.5]) == pytest.approx(0.5)
    matrix = np.random.default_rng(0).uniform(size=(5, 3))
    assert iqm(matrix) == pytest.approx(rliable_metrics.aggregate_iqm(matrix))


def test_stratified_bootstrap_iqm() -> None:
    rng = np.random.default_rng(1)
    matrix = rng.uniform(size=(10, 3))  # runs x tasks
    scores = {f"task{j}": matrix[:, j] for j in range(3)}
    point, low, high = stratified_bootstrap_iqm(scores, n_boot=2000, seed=3)
    assert point == pytest.approx(rliable_metrics.aggregate_iqm(matrix))
    assert low < point < high
    assert (point, low, high) == stratified_bootstrap_iqm(scores, n_boot=2000, seed=3)
    # a task whose runs agree contributes no spread
    assert stratified_bootstrap_iqm({"a": [0.5] * 4, "b": [0.5] * 6}, n_boot=100) == (pytest.approx(0.5),) * 3


def test_probability_of_improvement_by_hand_and_against_rliable() -> None:
    x = {"a": [1.0, 2.0, 3.0], "b": [1.0, 1.0, 1.0]}
    y = {"a": [0.0, 2.0, 4.0], "b": [0.0, 0.0, 0.0]}
    # task a: pairs won 1+0+0, 1+½+0, 1+1+0 = 4.5 of 9 -> 0.5; task b: 1.0; average 0.75
    point, low, high = probability_of_improvement(x, y, n_boot=2000, seed=0)
    assert point == pytest.approx(0.75)
    as_matrix = lambda d: np.stack([d["a"], d["b"]], axis=1)  # noqa: E731
    assert point == pytest.approx(rliable_metrics.probability_of_improvement(as_matrix(x), as_matrix(y)))
    assert 0.0 <= low <= point <= high <= 1.0
    assert (point, low, high) == probability_of_improvement(x, y, n_boot=2000, seed=0)
    assert probability_of_improvement(x, x, n_boot=10)[0] == pytest.approx(0.5)
    with pytest.raises(CohirlError, match="same non-empty task set"):
        probability_of_improvement(x, {"a": y["a"]})


def test_summarize_success_groups_episode_rows() -> None:
    rows = [("t", "m", 0, True)] * 8 + [("t", "m", 0, False)] * 2 + [("t", "m", 1, False)] * 5
    episodes = pd.DataFrame(rows, columns=["task", "method", "run_seed", "success"])
    table = summarize_success(episodes)
    assert list(table["run_seed"]) == [0, 1]
    assert list(table["n_episodes"]) == [10, 5] and list(table["successes"]) == [8, 0]
    assert list(table["success_rate"]) == [0.8, 0.0]
    assert (table.loc[0, "ci_low"], table.loc[0, "ci_high"]) == pytest.approx(wilson_interval(8, 10))
    assert table.loc[1, "ci_low"] == 0.0
    with pytest.raises(CohirlError, match="lacks columns"):
        summarize_success(episodes.drop(columns="method"))
