"""Stage 5 from hand-made result rows: tables, the demos-saved conversion, claims, and refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohirl.errors import CohirlError
from cohirl.report import figures, results, tables

METHODS = ["csil_ensemble", "csil_residual", "sparse_residual"]


def make_evals(seeds_by_method: dict[str, list[int]] | None = None) -> pd.DataFrame:
    rows = []
    curves = {"csil_ensemble": [0.5, 0.6, 0.8], "csil_residual": [0.5, 0.55, 0.7], "sparse_residual": [0.5, 0.2, 0.4]}
    for method, seeds in (seeds_by_method or {m: [0, 1, 2] for m in METHODS}).items():
        for seed in seeds:
            for steps, rate in zip([0, 1000, 2000], curves[method]):
                n = 20
                k = int(round(n * min(1.0, rate + 0.05 * seed)))
                rows.append({"task": "square", "method": method, "seed": seed, "env_steps": steps,
                             "n_episodes": n, "successes": k, "success_rate": k / n})
    return pd.DataFrame(rows)


def write_runs(root: Path, evals: pd.DataFrame) -> None:
    for (task, method, seed), rows in evals.groupby(["task", "method", "seed"]):
        out = root / "runs" / task / method / str(seed)
        out.mkdir(parents=True)
        rows.to_csv(out / "evals.csv", index=False)


BASE = pd.DataFrame({"task": "square", "method": "base", "success": [True] * 10 + [False] * 10})


def test_final_checkpoint_is_primary_and_best_is_separate() -> None:
    evals = make_evals()
    final = results.final_rows(evals)
    assert (final.env_steps == 2000).all()
    sparse_best = results.best_rows(evals).query("method == 'sparse_residual'")
    assert (sparse_best.env_steps == 0).all()  # best-over-training picks step 0 for the dropping baseline
    table = tables.main_table(evals, BASE, METHODS)
    cell = table[(table.column == "csil_ensemble final")].iloc[0]
    assert cell["mean"] == pytest.approx(final.query("method == 'csil_ensemble'").success_rate.mean())
    assert cell.low <= cell["mean"] <= cell.high and cell.n_seeds == 3
    wide = tables.format_cells(table)
    assert "csil_ensemble best-over-training" in wide.columns and wide.loc["square", "base"].startswith("0.50")


def test_initial_drop_detects_the_sparse_baseline_dip() -> None:
    drop = tables.initial_drop(make_evals(), BASE, fraction=0.5).set_index("method")
    assert drop.loc["sparse_residual", "drop_vs_base"] < -0.2
    assert drop.loc["csil_ensemble", "drop_vs_base"] >= 0


def test_base_level_is_paired_with_the_methods_evaluation_states() -> None:
    """Methods evaluated on 6 episodes are compared with the base's first 6 (same initial states)."""
    base = pd.DataFrame({"task": "square", "method": "base", "episode": np.arange(20)[::-1],
                         "success": [False] * 14 + [True] * 6})  # rows stored newest first
    evals = make_evals().assign(n_episodes=6)
    assert tables.paired_base_levels(base, evals)["square"] == 1.0  # episodes 0–5 all succeeded
    assert tables.paired_base_levels(base, make_evals())["square"] == pytest.approx(0.3)
    drop = tables.initial_drop(evals, base).set_index("method")
    assert drop.loc["csil_ensemble", "drop_vs_base_episodes"] == pytest.approx((0.55 - 1.0) * 6)  # seeds 0.5/0.55/0.6


def test_demos_needed_interpolates_a_hand_made_curve() -> None:
    curve = pd.DataFrame({"n_demos": [10, 25, 50, 100], "success_rate": [0.2, 0.4, 0.35, 0.8]})
    assert tables.demos_needed(curve, 0.1) == 10
    assert tables.demos_needed(curve, 0.3) == pytest.approx(17.5)
    assert tables.demos_needed(curve, 0.4) == pytest.approx(25)
    assert tables.demos_needed(curve, 0.6) == pytest.approx(50 + 0.2 / 0.4 * 50)  # dip flattened by the envelope
    assert math.isinf(tables.demos_needed(curve, 0.9))


def test_claims_and_aggregates_from_rows() -> None:
    evals = make_evals()
    claims = tables.claims(evals, BASE, "csil_ensemble").set_index("claim")
    assert bool(claims.loc["CSIL >= base on every task", "holds"])
    assert bool(claims.loc["CSIL > sparse-reward baseline at equal steps", "holds"])
    agg = tables.aggregates(evals, METHODS).set_index("method")
    assert agg.loc["csil_ensemble", "iqm"] > agg.loc["sparse_residual", "iqm"]
    poi = tables.improvement_probabilities(evals)
    assert (poi.p > 0.9).all()


def test_loading_refuses_missing_methods_and_mismatched_seeds(tmp_path: Path) -> None:
    write_runs(tmp_path / "a", make_evals({"csil_ensemble": [0, 1], "sparse_residual": [0, 1]}))
    with pytest.raises(CohirlError, match="missing methods \\['csil_residual'\\]"):
        results.load_evals(tmp_path / "a", methods=METHODS)
    write_runs(tmp_path / "b", make_evals({"csil_ensemble": [0, 1], "csil_residual": [0, 1], "sparse_residual": [0, 2]}))
    with pytest.raises(CohirlError, match="different seeds"):
        results.load_evals(tmp_path / "b", methods=METHODS)
    with pytest.raises(CohirlError, match="no finetuning results"):
        results.load_evals(tmp_path / "empty")


def test_loading_keeps_the_profiles_seeds_and_refuses_a_missing_one(tmp_path: Path) -> None:
    write_runs(tmp_path, make_evals())  # seeds 0, 1, 2 on disk
    assert sorted(results.load_evals(tmp_path, methods=METHODS, seeds=[0, 1]).seed.unique()) == [0, 1]
    with pytest.raises(CohirlError, match="missing seeds \\[3\\]"):
        results.load_evals(tmp_path, methods=METHODS, seeds=[0, 3])


def test_loading_reads_exactly_the_profiles_runs_not_the_rows_a_sweep_left_beside_them(tmp_path: Path) -> None:
    # `dvc exp run -S profiles.<p>.methods=[csil_residual]`: the other methods' committed rows stay on disk.
    write_runs(tmp_path, make_evals())
    evals = make_evals()
    tasks = sorted(evals.task.unique())
    runs = [(t, "csil_residual", s) for t in tasks for s in (0, 1)]
    loaded = results.load_evals(tmp_path, methods=["csil_residual"], tasks=tasks, seeds=[0, 1], runs=runs)
    assert set(zip(loaded.task, loaded.method, loaded.seed)) == set(runs)
    with pytest.raises(CohirlError, match=r"no evaluation rows for the runs \[\('" + tasks[0] + "', 'csil_residual', 7\)\]"):
        results.load_evals(tmp_path, methods=["csil_residual"], runs=[*runs, (tasks[0], "csil_residual", 7)])


def test_empty_demo_scaling_table_reads_as_no_curve(tmp_path: Path) -> None:
    (tmp_path / "demo_scaling").mkdir()
    pd.DataFrame(columns=["task", "n_demos", "success_rate"]).to_csv(tmp_path / "demo_scaling" / "square.csv",
                                                                     index=False)
    assert results.load_demo_scaling(tmp_path, "square") is None
    assert results.load_demo_scaling(tmp_path, "absent") is None
    fig = figures.demo_scaling_plot({}, note="not measured in this profile")
    assert "not measured in this profile" in [t.get_text() for t in fig.axes[0].texts]


def test_curve_band_and_figure(tmp_path: Path) -> None:
    evals = make_evals()
    band = figures.curve_band(evals.query("method == 'csil_ensemble'"))
    assert list(band.env_steps) == [0, 1000, 2000] and (band.low <= band["mean"]).all()
    fig = figures.learning_curves(evals, BASE, METHODS)
    figures.save_figure(fig, tmp_path, "curves")
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "curves.pdf").exists()
    assert np.isclose(band["mean"].iloc[-1], results.final_rows(evals).query("method == 'csil_ensemble'").success_rate.mean())
    ax = fig.axes[0]
    n_seeds = evals[evals.task == evals.task.min()].groupby("method").seed.nunique()
    thin = [line for line in ax.get_lines() if line.get_linewidth() < 1]
    assert len(thin) == n_seeds[list(METHODS)].sum()  # one thin line per seed of every method
    assert [line.get_linestyle() for line in ax.get_lines()].count("--") == 1  # the frozen base, on every panel
    figures.save_figure(figures.learning_curves(evals, BASE, METHODS), tmp_path / "again", "curves")
    for ext in ("png", "pdf"):  # DVC hashes the figures: the same rows must give the same bytes
        assert (tmp_path / f"curves.{ext}").read_bytes() == (tmp_path / "again" / f"curves.{ext}").read_bytes()
    assert b"/CreationDate" not in (tmp_path / "curves.pdf").read_bytes()  # differs per second otherwise


def test_task_effects_intervals_steps_to_the_baseline_and_the_targets() -> None:
    evals = make_evals()
    effects = tables.task_effects(evals, BASE, "csil_ensemble").set_index("task")
    row = effects.loc["square"]
    assert row.final == pytest.approx(0.85) and row.base == pytest.approx(0.5)
    assert row.vs_base == pytest.approx(0.35) and 0 < row.vs_base_low <= row.vs_base <= row.vs_base_high
    assert row.vs_baseline == pytest.approx(0.85 - 0.45) and row.vs_baseline_low > 0
    assert row.steps_to_baseline_final == 0  # BC-small (0.55) is already above the baseline's final 0.45
    assert row.start == pytest.approx(0.55) and row.vs_start == pytest.approx(0.30) and row.vs_start_low > 0
    assert row.baseline_start == pytest.approx(0.55) and row.baseline_final == pytest.approx(0.45)
    assert [tables.steps_to_reach(evals, "square", "csil_ensemble", level) for level in (0.65, 0.7)] == [1000, 2000]
    assert math.isnan(tables.steps_to_reach(evals, "square", "csil_ensemble", 0.95))
    claims = tables.effect_claims(effects.reset_index()).set_index("claim")
    assert not claims.loc["CSIL final > base, 95 % interval excluding 0, on >= 2 tasks", "holds"]  # one task only
    two = pd.concat([evals, evals.assign(task="peg")])
    base_two = pd.concat([BASE, BASE.assign(task="peg")])
    claims = tables.effect_claims(tables.task_effects(two, base_two, "csil_ensemble")).set_index("claim")
    assert claims.holds.all(), claims
    worse = two.assign(success_rate=np.where(two.method == "csil_ensemble", 0.2, two.success_rate))
    claims = tables.effect_claims(tables.task_effects(worse, base_two, "csil_ensemble")).set_index("claim")
    assert not claims.holds.any(), claims  # below the base, below the baseline, an initial drop: all False
    reach = claims.loc["CSIL reaches the sparse baseline's final success in <= 1/3 of its env steps (every task)"]
    assert "not reached within the budget" in reach.evidence and "nan" not in reach.evidence
    gain = "finetuning improves on CSIL's own step 0 (final - step 0, 95 % interval excluding 0) on >= 2 tasks"
    flat = two.assign(success_rate=np.where(two.method == "csil_ensemble", 0.8, two.success_rate))
    claims = tables.effect_claims(tables.task_effects(flat, base_two, "csil_ensemble")).set_index("claim")
    assert claims.loc["CSIL final > base, 95 % interval excluding 0, on >= 2 tasks", "holds"]
    assert not claims.loc[gain, "holds"]  # above the base from step 0 on: the gain is not finetuning's
    assert "0.80 -> 0.80, +0.00" in claims.loc[gain, "evidence"]
    reach = claims.loc["CSIL reaches the sparse baseline's final success in <= 1/3 of its env steps (every task)"]
    assert "the baseline having fallen from 0.55 to 0.45" in reach.evidence


def test_ablation_effects_compare_with_the_full_method_on_its_task() -> None:
    evals = make_evals()
    ablated = evals[evals.method == "csil_residual"].assign(method="csil_residual_no_refine",
                                                           success_rate=lambda d: d.success_rate - 0.3)
    table = tables.ablation_effects(pd.concat([evals, ablated]), "csil_residual", ["csil_residual_no_refine"])
    assert len(table) == 1 and table.difference.iloc[0] == pytest.approx(-0.3)
    assert table.high.iloc[0] < 0
    assert tables.ablation_effects(evals, "csil_residual", ["csil_residual_no_refine"]).empty


def test_bootstrap_difference_is_seeded_and_centred_on_the_difference_of_means() -> None:
    from cohirl.eval.stats import bootstrap_difference

    x, y = [0.8, 0.9, 0.85], [0.4, 0.5, 0.45]
    first = bootstrap_difference(x, y, n_boot=2000, seed=3)
    assert first == bootstrap_difference(x, y, n_boot=2000, seed=3)
    assert first[0] == pytest.approx(0.4) and first[1] < 0.4 < first[2]


def test_extra_runs_are_the_ablations_of_the_longest_listed_method() -> None:
    from cohirl.stages.report import _ablations_of

    evals = pd.DataFrame({"method": METHODS + ["csil_residual_no_refine", "csil_residual_no_critic_pretrain"]})
    assert _ablations_of("csil_residual", evals, METHODS) == ["csil_residual_no_critic_pretrain",
                                                             "csil_residual_no_refine"]
    assert _ablations_of("csil_ensemble", evals, METHODS) == []
