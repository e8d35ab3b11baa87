"""The report's learning curves and headline metrics through dvclive, so that ``dvc plots`` and ``dvc exp
show`` read them as they read any dvclive run (no cohirl-specific glue).

Each evaluation point of a profile's runs is logged at ``step`` = env steps: the mean success over
seeds as ``<task>/<method>``, each seed's as ``seeds/<task>/<method>/seed_<s>``. dvclive writes one
``plots/metrics/...tsv`` per metric (``step`` and the value; no timestamps, so the files are
byte-identical for the same rows) and ``metrics.json``, whose ``<task>.<method>`` entries are the last
logged values: the final checkpoint's, mean over seeds. The per-episode rows stay CSV (the statistics
need them); this is a view of them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cohirl.io import write_dvclive

ROUND = 4  # decimals: means of success rates over at most a few hundred episodes


def curve_points(evals: pd.DataFrame, runs: dict[str, list[str]]) -> list[tuple[str, int, float]]:
    """(metric name, env steps, success) of every curve, each curve's points in env-step order."""
    points: list[tuple[str, int, float]] = []
    for task, methods in runs.items():
        for method in methods:
            rows = evals[(evals.task == task) & (evals.method == method)]
            mean = rows.groupby("env_steps").success_rate.mean()
            points += [(f"{task}/{method}", int(s), round(float(v), ROUND)) for s, v in mean.items()]
            for seed, per_seed in rows.groupby("seed"):
                points += [(f"seeds/{task}/{method}/seed_{int(seed)}", int(s), round(float(v), ROUND))
                           for s, v in per_seed.set_index("env_steps").success_rate.sort_index().items()]
    return points


def write_live(evals: pd.DataFrame, runs: dict[str, list[str]], out: Path) -> Path:
    """Log ``curve_points`` with dvclive into ``out`` (written beside it, then renamed into place)."""
    return write_dvclive(curve_points(evals, runs), out)
