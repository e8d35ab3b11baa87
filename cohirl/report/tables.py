"""The paper's tables, computed from result rows (never typed in)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from cohirl.eval.stats import (bootstrap_ci, bootstrap_difference, probability_of_improvement, stratified_bootstrap_iqm,
                               wilson_interval)
from cohirl.report.results import best_rows, final_rows

CSIL_METHODS = ("csil_ensemble", "csil_residual")
BASELINE = "sparse_residual"


def _cell(values: Sequence[float], seed: int = 0) -> dict[str, float]:
    mean, low, high = bootstrap_ci(values, n_boot=5000, seed=seed)
    return {"mean": mean, "low": low, "high": high, "n_seeds": len(values)}


def base_levels(base: pd.DataFrame) -> pd.DataFrame:
    """Base success per task with a Wilson interval over its evaluation episodes."""
    rows = []
    for task, r in base.groupby("task"):
        k, n = int(r.success.sum()), len(r)
        low, high = wilson_interval(k, n)
        rows.append({"task": task, "mean": k / n, "low": low, "high": high, "n_episodes": n})
    return pd.DataFrame(rows)


def paired_base_levels(base: pd.DataFrame, evals: pd.DataFrame) -> pd.Series:
    """Base success per task on the states the methods were evaluated on.

    A method's evaluation of n episodes uses the first n of the paired initial states
    (``eval_init_seeds`` is prefix-stable), so the base's first n episodes are its paired level.
    """
    out = {}
    ordered = base.sort_values("episode", kind="stable") if "episode" in base.columns else base
    for task, r in ordered.groupby("task"):
        n = int(evals[evals.task == task].n_episodes.max()) if task in set(evals.task) else len(r)
        out[task] = float(r.success.iloc[:n].mean())
    return pd.Series(out, name="base_paired")


def main_table(evals: pd.DataFrame, base: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Success at each task's budget: base, BC-small (step 0), each method's final and best."""
    final, best = final_rows(evals), best_rows(evals)
    step0 = evals[evals.env_steps == 0]
    levels = base_levels(base).set_index("task")
    rows = []
    for task in sorted(evals.task.unique()):
        b = levels.loc[task]
        rows.append({"task": task, "column": "base", "mean": b["mean"], "low": b.low, "high": b.high,
                     "n_seeds": np.nan, "budget": 0})
        for method in methods:
            sel = lambda df: df[(df.task == task) & (df.method == method)].success_rate.to_numpy()  # noqa: E731
            budget = int(final[(final.task == task) & (final.method == method)].env_steps.max())
            for column, frame in ((f"{method} @0 (BC-small)", step0), (f"{method} final", final),
                                  (f"{method} best-over-training", best)):
                values = sel(frame)
                if len(values):
                    rows.append({"task": task, "column": column, **_cell(values), "budget": budget})
    return pd.DataFrame(rows)


def format_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Wide view: one row per task, cells 'mean [low, high] (n)'."""
    def fmt(r: pd.Series) -> str:
        n = "" if pd.isna(r.n_seeds) else f" (n={int(r.n_seeds)})"
        return f"{r['mean']:.2f} [{r.low:.2f}, {r.high:.2f}]{n}"

    table = table.assign(cell=table.apply(fmt, axis=1))
    wide = table.pivot(index="task", columns="column", values="cell")
    order = list(dict.fromkeys(table.column))
    return wide[order]


def initial_drop(evals: pd.DataFrame, base: pd.DataFrame, fraction: float = 0.2) -> pd.DataFrame:
    """Per (task, method): the lowest mean success in the first ``fraction`` of the budget, against
    the base on the same evaluation states (``base``) and in episodes of one evaluation."""
    levels = paired_base_levels(base, evals)
    rows = []
    for (task, method), r in evals.groupby(["task", "method"]):
        positive = r.env_steps[r.env_steps > 0]
        first_update_eval = positive.min() if len(positive) else 0  # always include one post-0 point
        early = r[r.env_steps <= max(r.env_steps.max() * fraction, first_update_eval)]
        curve = early.groupby("env_steps").success_rate.mean()
        n = int(r.n_episodes.max())
        rows.append({"task": task, "method": method, "base": levels[task], "n_episodes": n, "start": curve.iloc[0],
                     "min_early": curve.min(), "drop_vs_base": curve.min() - levels[task],
                     "drop_vs_base_episodes": (curve.min() - levels[task]) * n,
                     "drop_vs_start": curve.min() - curve.iloc[0]})
    return pd.DataFrame(rows)


def aggregates(evals: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """IQM over tasks x seeds with stratified bootstrap intervals, final checkpoint."""
    final = final_rows(evals)
    rows = []
    for method in methods:
        scores = {t: r.success_rate.to_numpy() for t, r in final[final.method == method].groupby("task")}
        value, low, high = stratified_bootstrap_iqm(scores, n_boot=5000)
        rows.append({"method": method, "iqm": value, "low": low, "high": high})
    return pd.DataFrame(rows)


def improvement_probabilities(evals: pd.DataFrame, baseline: str = BASELINE,
                              methods: Sequence[str] = CSIL_METHODS) -> pd.DataFrame:
    final = final_rows(evals)
    by = lambda m: {t: r.success_rate.to_numpy() for t, r in final[final.method == m].groupby("task")}  # noqa: E731
    rows = []
    for method in methods:
        if method in set(final.method) and baseline in set(final.method):
            p, low, high = probability_of_improvement(by(method), by(baseline), n_boot=5000)
            rows.append({"comparison": f"P({method} > {baseline})", "p": p, "low": low, "high": high})
    return pd.DataFrame(rows)


def demos_needed(curve: pd.DataFrame, success: float) -> float:
    """Demonstrations BC needs to reach ``success``, by linear interpolation of the (monotone
    envelope of the) demo-scaling curve; ``inf`` when it never gets there within the measured range."""
    c = curve.sort_values("n_demos")
    n, s = c.n_demos.to_numpy(float), np.maximum.accumulate(c.success_rate.to_numpy(float))
    if success <= s[0]:
        return float(n[0])
    if success > s[-1]:
        return float("inf")
    i = int(np.searchsorted(s, success))
    if s[i] == s[i - 1]:
        return float(n[i])
    return float(n[i - 1] + (success - s[i - 1]) * (n[i] - n[i - 1]) / (s[i] - s[i - 1]))


def claims(evals: pd.DataFrame, base: pd.DataFrame, method: str = "csil_ensemble") -> pd.DataFrame:
    """The paper's claims, each checked on our suite with its evidence. "base" is the base on the
    same evaluation states as the methods (``paired_base_levels``)."""
    final = final_rows(evals)
    levels = paired_base_levels(base, evals)
    per_task = final[final.method == method].groupby("task").success_rate.mean()
    base_task = final[final.method == BASELINE].groupby("task").success_rate.mean()
    drops = initial_drop(evals, base)
    drops = drops[drops.method == method]
    n = len(per_task)
    rows = [
        ("CSIL >= base on every task", bool((per_task >= levels[per_task.index] - 1e-9).all()),
         "; ".join(f"{t}: {per_task[t]:.2f} vs {levels[t]:.2f}" for t in per_task.index)),
        (">= 90% success on at least 5 of 6 tasks (scaled: all but one)", int((per_task >= 0.9).sum()) >= max(1, n - 1),
         f"{int((per_task >= 0.9).sum())}/{n} tasks at >= 0.90"),
        ("CSIL > sparse-reward baseline at equal steps", bool((per_task > base_task.reindex(per_task.index)).all()),
         "; ".join(f"{t}: {per_task[t]:.2f} vs {base_task.get(t, np.nan):.2f}" for t in per_task.index)),
        ("no initial drop (early minimum >= base - 1 episode)", bool((drops.drop_vs_base_episodes >= -1 - 1e-9).all()),
         "; ".join(f"{r.task}: min {r.min_early:.2f} vs base {r.base:.2f}" for r in drops.itertuples())),
    ]
    return pd.DataFrame(rows, columns=["claim", "holds", "evidence"]).assign(method=method)


def steps_to_reach(evals: pd.DataFrame, task: str, method: str, level: float) -> float:
    """First evaluation step at which ``method``'s mean success over seeds reaches ``level`` (NaN: never)."""
    curve = evals[(evals.task == task) & (evals.method == method)].groupby("env_steps").success_rate.mean()
    reached = curve[curve >= level - 1e-9]
    return float(reached.index.min()) if len(reached) else float("nan")


def task_effects(evals: pd.DataFrame, base: pd.DataFrame, method: str, baseline: str = BASELINE) -> pd.DataFrame:
    """Per task, final checkpoint, bootstrap 95 % over seeds: ``method`` - base on the same states, and
    ``method`` - ``baseline`` at equal env steps; ``method``'s final - its own step 0 (paired by seed: what
    finetuning added to the BC-initialised policy); the env steps ``method`` needs to reach the baseline's
    final mean success, as a fraction of the baseline's budget; the early minimum against the base."""
    final = final_rows(evals)
    levels = paired_base_levels(base, evals)
    drops = initial_drop(evals, base).set_index(["task", "method"])
    rows = []
    for task in sorted(set(final[final.method == method].task)):
        ours = final[(final.task == task) & (final.method == method)].success_rate.to_numpy()
        diff, low, high = bootstrap_ci(ours - levels[task], n_boot=5000)
        row = {"task": task, "method": method, "n_seeds": len(ours), "final": float(ours.mean()),
               "base": levels[task], "vs_base": diff, "vs_base_low": low, "vs_base_high": high,
               "early_min_vs_base_episodes": float(drops.loc[(task, method), "drop_vs_base_episodes"])}
        row.update(_gain_over_start(evals, final, task, method))
        theirs = final[(final.task == task) & (final.method == baseline)]
        if len(theirs):
            diff, low, high = bootstrap_difference(ours, theirs.success_rate.to_numpy(), n_boot=5000)
            budget = float(theirs.env_steps.max())
            reach = steps_to_reach(evals, task, method, float(theirs.success_rate.mean()))
            start = evals[(evals.task == task) & (evals.method == baseline) & (evals.env_steps == 0)]
            row.update({"baseline_start": float(start.success_rate.mean()) if len(start) else float("nan"),
                        "baseline_final": float(theirs.success_rate.mean()), "vs_baseline": diff,
                        "vs_baseline_low": low, "vs_baseline_high": high, "steps_to_baseline_final": reach,
                        "fraction_of_baseline_budget": reach / budget if budget else float("nan")})
        rows.append(row)
    return pd.DataFrame(rows)


def _gain_over_start(evals: pd.DataFrame, final: pd.DataFrame, task: str, method: str) -> dict[str, float]:
    """Final - step 0 of each seed of ``method`` on ``task``, bootstrap 95 % over seeds."""
    ours = evals[(evals.task == task) & (evals.method == method)]
    start = ours[ours.env_steps == 0].set_index("seed").success_rate
    end = final[(final.task == task) & (final.method == method)].set_index("seed").success_rate
    paired = (end - start.reindex(end.index)).dropna().to_numpy()
    if not len(paired):
        return {"start": float("nan"), "vs_start": float("nan"), "vs_start_low": float("nan"),
                "vs_start_high": float("nan")}
    diff, low, high = bootstrap_ci(paired, n_boot=5000)
    return {"start": float(start.mean()), "vs_start": diff, "vs_start_low": low, "vs_start_high": high}


def ablation_effects(evals: pd.DataFrame, method: str, ablations: Sequence[str]) -> pd.DataFrame:
    """Final success of each ablation minus the full method's, on the tasks where both ran (bootstrap
    95 % over seeds; a negative difference: the removed part helps)."""
    final = final_rows(evals)
    rows = []
    for ablation in ablations:
        for task in sorted(set(final[final.method == ablation].task) & set(final[final.method == method].task)):
            full = final[(final.task == task) & (final.method == method)].success_rate.to_numpy()
            ablated = final[(final.task == task) & (final.method == ablation)].success_rate.to_numpy()
            diff, low, high = bootstrap_difference(ablated, full, n_boot=5000)
            rows.append({"task": task, "ablation": ablation, "method": method, "ablation_final": float(ablated.mean()),
                         "method_final": float(full.mean()), "difference": diff, "low": low, "high": high,
                         "n_seeds": len(ablated)})
    return pd.DataFrame(rows, columns=["task", "ablation", "method", "ablation_final", "method_final", "difference",
                                       "low", "high", "n_seeds"])


def _steps_evidence(row: tuple) -> str:
    """'N env steps (f of the budget)', or that the method never reached the baseline's final success."""
    steps = getattr(row, "steps_to_baseline_final", float("nan"))
    if np.isnan(steps):
        return "not reached within the budget" if hasattr(row, "steps_to_baseline_final") else "no baseline run"
    text = f"{steps:.0f} env steps ({row.fraction_of_baseline_budget:.2f} of the budget)"
    start = getattr(row, "baseline_start", float("nan"))
    if start > row.baseline_final + 1e-9:  # the bar is lower than where both methods began
        text += f", the baseline having fallen from {start:.2f} to {row.baseline_final:.2f}"
    return text


def effect_claims(effects: pd.DataFrame) -> pd.DataFrame:
    """The paper's targets, checked on ``task_effects`` rows of one method (False unless they hold)."""
    method = effects.method.iloc[0] if len(effects) else ""
    excluding_zero = effects[effects.vs_base_low > 0]
    fraction = effects.get("fraction_of_baseline_budget", pd.Series(dtype=float))
    rows = [
        ("CSIL >= base on every task (final, paired states)", bool(len(effects)) and bool((effects.vs_base >= -1e-9).all()),
         "; ".join(f"{r.task}: {r.final:.2f} vs {r.base:.2f}" for r in effects.itertuples())),
        ("CSIL final > base, 95 % interval excluding 0, on >= 2 tasks", len(excluding_zero) >= 2,
         "; ".join(f"{r.task}: {r.vs_base:+.2f} [{r.vs_base_low:+.2f}, {r.vs_base_high:+.2f}]"
                   for r in effects.itertuples())),
        ("CSIL reaches the sparse baseline's final success in <= 1/3 of its env steps (every task)",
         bool(len(fraction)) and bool((fraction <= 1 / 3 + 1e-9).all()),
         "; ".join(f"{r.task}: {_steps_evidence(r)}" for r in effects.itertuples())),
        ("finetuning improves on CSIL's own step 0 (final - step 0, 95 % interval excluding 0) on >= 2 tasks",
         bool((effects.get("vs_start_low", pd.Series(dtype=float)) > 0).sum() >= 2),
         "; ".join(f"{r.task}: {r.start:.2f} -> {r.final:.2f}, {r.vs_start:+.2f} [{r.vs_start_low:+.2f}, "
                   f"{r.vs_start_high:+.2f}]" for r in effects.itertuples())),
        ("no initial drop (minimum over the first 20 % >= base - 1 episode)",
         bool(len(effects)) and bool((effects.early_min_vs_base_episodes >= -1 - 1e-9).all()),
         "; ".join(f"{r.task}: {r.early_min_vs_base_episodes:+.1f} episodes" for r in effects.itertuples())),
    ]
    return pd.DataFrame(rows, columns=["claim", "holds", "evidence"]).assign(method=method)
