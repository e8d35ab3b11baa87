# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: cohirl
#     language: python
#     name: cohirl
# ---

# %% [markdown]
# # 05 — Results: curves, tables and the paper's claims
# Reads only the rows under `results/` (per-evaluation and per-episode CSVs written by the
# pipeline). The **final checkpoint** is the primary number; best-over-training appears only in
# its own labelled column. Intervals: Wilson 95 % for a single success rate, bootstrap 95 % over
# seeds, stratified bootstrap for aggregates (rliable's definitions).

# %% tags=["parameters"]
results_dir = "results"
profile = None
out_tables = "results/tables"
out_figures = "results/figures/paper"

# %%
import json
from pathlib import Path

import pandas as pd

from cohirl.config import profile_section, read_params
from cohirl.report import figures, results, tables

section = profile_section(read_params(), profile)
tasks, methods = section["tasks"], section["methods"]
evals = results.load_evals(Path(results_dir), methods=methods, tasks=tasks, seeds=section["seeds"])
base = results.load_base(Path(results_dir), tasks)
out_t, out_f = Path(out_tables), Path(out_figures)
out_t.mkdir(parents=True, exist_ok=True)
print(f"{len(evals)} evaluation rows; tasks {tasks}; methods {methods}; "
      f"seeds {sorted(evals.seed.unique())}")

# %% [markdown]
# ## 1. Success rate vs env steps (mean, 95 % bootstrap band over seeds; stars = step 0 = BC-small)

# %%
fig = figures.learning_curves(evals, base, methods)
figures.save_figure(fig, out_f, "learning_curves")

# %% [markdown]
# ## 2. Main table — success at each task's budget (final checkpoint first)

# %%
main = tables.main_table(evals, base, methods)
main.to_csv(out_t / "main_table.csv", index=False)
wide = tables.format_cells(main)
(out_t / "main_table.md").write_text(wide.to_markdown() + "\n")
(out_t / "main_table.tex").write_text(wide.to_latex())
wide

# %% [markdown]
# ## 3. The initial drop: the first 20 % of the budget, relative to the base

# %%
drop = tables.initial_drop(evals, base, fraction=0.2)
drop.to_csv(out_t / "initial_drop.csv", index=False)
fig = figures.learning_curves(evals, base, methods, max_fraction=0.2, title="first 20 % of the budget")
figures.save_figure(fig, out_f, "initial_drop")
drop

# %% [markdown]
# ## 4. Aggregates across tasks: IQM (stratified bootstrap) and probability of improvement

# %%
agg = tables.aggregates(evals, methods)
poi = tables.improvement_probabilities(evals)
agg.to_csv(out_t / "aggregates.csv", index=False)
poi.to_csv(out_t / "probability_of_improvement.csv", index=False)
display(agg)
poi

# %% [markdown]
# ## 5. RL or more demonstrations?
# From the BC demo-scaling curve: how many demonstrations BC would need to match each method's
# final success (`inf` = beyond the largest number of demonstrations measured).

# %%
curves = {t: c for t in tasks if (c := results.load_demo_scaling(Path(results_dir), t)) is not None}
final = results.final_rows(evals).groupby(["task", "method"]).success_rate.mean().reset_index()
final["demos_needed_by_bc"] = [tables.demos_needed(curves[r.task], r.success_rate) if r.task in curves
                               else float("nan") for r in final.itertuples()]
final.to_csv(out_t / "demos_equivalent.csv", index=False)
note = (f"demo scaling not measured in profile {profile or read_params()['profile']!r} "
        "(its demo_scaling.n_demos is empty in params.yaml)")
figures.save_figure(figures.demo_scaling_plot(curves, note), out_f, "demo_scaling")
if not curves:
    print(note)
final

# %% [markdown]
# ## 6. Has the critic settled? Its value vs the Monte-Carlo return it should predict
# Solid: the critic; dashed: the discounted return under the learned reward, at the demo states and
# at the evaluation episodes' first states. A critic far from its return is still moving its TD
# targets (README: "Stability over long budgets").

# %%
figures.save_figure(figures.critic_calibration(evals, [m for m in methods if m.startswith("csil")]), out_f,
                    "critic_calibration")

# %% [markdown]
# ## 7. The paper's claims, checked on our suite

# %%
claim_rows = pd.concat([tables.claims(evals, base, m) for m in methods if m.startswith("csil")])
claim_rows.to_csv(out_t / "claims.csv", index=False)
(out_t / "claims.md").write_text(claim_rows.to_markdown(index=False) + "\n")
claim_rows

# %%
headline = {f"{r.task}/{r.method}": round(float(r.success_rate), 4) for r in final.itertuples()}
Path(results_dir, "metrics.json").write_text(json.dumps(headline, indent=2, sort_keys=True))
headline
