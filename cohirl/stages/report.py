"""Stage 5: tables, figures, claims, and the learning curves and headline metrics through dvclive
(``live/``), from a profile's result rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cohirl.config import profile_name, profile_runs, profile_section, read_params
from cohirl.io import write_csv, write_text
from cohirl.stages.common import results_dir

# ---------------------------------------------------------------- stage 5: report
@dataclass
class Report:
    """What stage 5 wrote: the tables (also under ``out_tables``) and the figures (under ``out_figures``)."""

    tasks: list[str]
    methods: list[str]
    evals: pd.DataFrame
    main: pd.DataFrame
    initial_drop: pd.DataFrame
    aggregates: pd.DataFrame
    improvement: pd.DataFrame
    demos_equivalent: pd.DataFrame
    claims: pd.DataFrame
    headline: dict[str, float]
    figures: dict[str, Any] = field(default_factory=dict)
    demo_scaling_note: str = ""
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)  # per task: vs base, vs the sparse baseline
    effect_claims: pd.DataFrame = field(default_factory=pd.DataFrame)  # the paper's targets, held or not
    ablations: pd.DataFrame = field(default_factory=pd.DataFrame)  # ablation final - full method final


def methods_by_task(section: dict[str, Any]) -> dict[str, list[str]]:
    """The methods run on each task of a profile section (its methods, then its ``extra_runs``): the
    curves the report logs through dvclive."""
    out: dict[str, list[str]] = {task: [] for task in section["tasks"]}
    for task, method, _ in profile_runs(section):
        if method not in out[task]:
            out[task].append(method)
    return out


def run_report(rows_dir: Path | None = None, out_tables: Path | None = None, out_figures: Path | None = None,
               profile: str | None = None) -> Report:
    """Tables, figures, claims and the dvclive curves and metrics (``live/``) from the result rows of the
    profile (``results/<p>``)."""
    import matplotlib.pyplot as plt

    from cohirl.report import figures, results, tables
    from cohirl.report.live import ROUND, write_live

    params = read_params()
    name = profile_name(params, profile)
    section = profile_section(params, name)
    rows = Path(rows_dir or results_dir(name))
    out_t, out_f = Path(out_tables or rows / "tables"), Path(out_figures or rows / "figures")
    tasks, methods = list(section["tasks"]), list(section["methods"])
    evals = results.load_evals(rows, methods=methods, tasks=tasks, seeds=section["seeds"], runs=profile_runs(section))
    base = results.load_base(rows, tasks)
    figs: dict[str, Any] = {}

    def save(fig: Any, name: str) -> None:
        figures.save_figure(fig, out_f, name)
        plt.close(fig)  # kept for display (the notebook shows it once, where it explains it)
        figs[name] = fig

    save(figures.learning_curves(evals, base, methods), "learning_curves")
    write_live(evals, methods_by_task(section), rows / "live")  # dvc.yaml's plots and metrics (dvclive)
    main = tables.main_table(evals, base, methods)
    write_csv(main, out_t / "main_table.csv")
    wide = tables.format_cells(main)
    write_text(wide.to_markdown() + "\n", out_t / "main_table.md")
    write_text(wide.to_latex(), out_t / "main_table.tex")

    drop = tables.initial_drop(evals, base, fraction=0.2)
    write_csv(drop, out_t / "initial_drop.csv")
    save(figures.learning_curves(evals, base, methods, max_fraction=0.2, title="first 20 % of the budget"),
         "initial_drop")

    agg, poi = tables.aggregates(evals, methods), tables.improvement_probabilities(evals)
    write_csv(agg, out_t / "aggregates.csv")
    write_csv(poi, out_t / "probability_of_improvement.csv")

    curves = {t: c for t in tasks if (c := results.load_demo_scaling(rows, t)) is not None}
    final = results.final_rows(evals).groupby(["task", "method"]).success_rate.mean().reset_index()
    final["demos_needed_by_bc"] = [tables.demos_needed(curves[r.task], r.success_rate) if r.task in curves
                                   else float("nan") for r in final.itertuples()]
    write_csv(final, out_t / "demos_equivalent.csv")
    note = (f"demo scaling not measured in profile {name!r} "
            "(its demo_scaling.n_demos is empty in params.yaml)")
    save(figures.demo_scaling_plot(curves, note), "demo_scaling")
    save(figures.critic_calibration(evals, [m for m in methods if m.startswith("csil")]), "critic_calibration")

    csil = [m for m in methods if m.startswith("csil")]
    claim_rows = pd.concat([tables.claims(evals, base, m) for m in csil])
    write_csv(claim_rows, out_t / "claims.csv")
    effects = pd.concat([tables.task_effects(evals, base, m) for m in csil], ignore_index=True)
    effect_claims = pd.concat([tables.effect_claims(effects[effects.method == m]) for m in csil], ignore_index=True)
    ablations = pd.concat([tables.ablation_effects(evals, m, _ablations_of(m, evals, methods)) for m in csil],
                          ignore_index=True)
    write_csv(effects, out_t / "effects.csv")
    write_csv(effect_claims, out_t / "effect_claims.csv")
    write_csv(ablations, out_t / "ablations.csv")
    write_text(_claims_markdown(name, claim_rows, effects, effect_claims, ablations, final), out_t / "claims.md")
    headline = {f"{r.task}/{r.method}": round(float(r.success_rate), ROUND) for r in final.itertuples()}
    return Report(tasks, methods, evals, main, drop, agg, poi, final, claim_rows, headline, figs,
                  "" if curves else note, effects, effect_claims, ablations)


def _ablations_of(method: str, evals: pd.DataFrame, methods: list[str]) -> list[str]:
    """Runs beyond the profile's methods named ``<method>_<change>`` (``extra_runs``), for the longest
    listed ``<method>`` prefix."""
    extra = sorted(set(evals.method) - set(methods))
    return [a for a in extra if max((m for m in methods if a.startswith(m + "_")), key=len, default=None) == method]


def _claims_markdown(profile: str, claims: pd.DataFrame, effects: pd.DataFrame, effect_claims: pd.DataFrame,
                     ablations: pd.DataFrame, demos_equivalent: pd.DataFrame) -> str:
    """claims.md: every claim with its evidence, computed from the rows (final checkpoint first)."""
    def table(df: pd.DataFrame) -> str:
        return df.to_markdown(index=False, floatfmt=".3f") if len(df) else "(none in this profile)"

    return "\n\n".join([
        f"# Claims checked on profile `{profile}` (final checkpoint; bootstrap 95 % over seeds)",
        "## The paper's targets\n\n" + table(effect_claims),
        "## Per task: CSIL vs the base on the same states, vs the sparse baseline at equal env steps\n\n"
        + table(effects),
        "## Ablations (ablation final - full method final)\n\n" + table(ablations),
        "## Demonstrations BC needs to match each method's final success\n\n" + table(demos_equivalent),
        "## Earlier claim checks (scaled to this suite)\n\n" + table(claims),
    ]) + "\n"
