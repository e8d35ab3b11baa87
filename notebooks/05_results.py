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
# Reads only the rows under `results/<profile>/` (per-evaluation and per-episode CSVs written by the
# pipeline). The **final checkpoint** is the primary number; best-over-training appears only in
# its own labelled column. Intervals: Wilson 95 % for a single success rate, bootstrap 95 % over
# seeds, stratified bootstrap for aggregates (rliable's definitions).

# %% tags=["parameters"]
profile = None  # params.yaml's default profile
rows_dir = None  # default results/<profile>
out_tables = None  # default results/<profile>/tables
out_figures = None  # default results/<profile>/figures

# %%
from pathlib import Path

from cohirl.stages import run_report

report = run_report(rows_dir and Path(rows_dir), out_tables and Path(out_tables), out_figures and Path(out_figures),
                    profile)
evals = report.evals
print(f"{len(evals)} evaluation rows; tasks {report.tasks}; methods {report.methods}; "
      f"seeds {sorted(evals.seed.unique())}")

# %% [markdown]
# ## 1. Success rate vs env steps (mean, 95 % bootstrap band over seeds; stars = step 0 = BC-small)

# %%
report.figures["learning_curves"]

# %% [markdown]
# ## 2. Main table — success at each task's budget (final checkpoint first)

# %%
from cohirl.report import tables

tables.format_cells(report.main)

# %% [markdown]
# ## 3. The initial drop: the first 20 % of the budget, relative to the base

# %%
display(report.figures["initial_drop"])
report.initial_drop

# %% [markdown]
# ## 4. Aggregates across tasks: IQM (stratified bootstrap) and probability of improvement

# %%
display(report.aggregates)
report.improvement

# %% [markdown]
# ## 5. RL or more demonstrations?
# From the BC demo-scaling curve: how many demonstrations BC would need to match each method's
# final success (`inf` = beyond the largest number of demonstrations measured).

# %%
if report.demo_scaling_note:
    print(report.demo_scaling_note)
display(report.figures["demo_scaling"])
report.demos_equivalent

# %% [markdown]
# ## 6. Has the critic settled? Its value vs the Monte-Carlo return it should predict
# Solid: the critic; dashed: the discounted return under the learned reward, at the demo states and
# at the evaluation episodes' first states. A critic far from its return is still moving its TD
# targets (README: "Stability over long budgets").

# %%
report.figures["critic_calibration"]

# %% [markdown]
# ## 7. The paper's claims, checked on our suite
# Per task, final checkpoint, bootstrap 95 % over seeds: CSIL against the base on the same states and
# against the sparse baseline at equal env steps, the env steps CSIL needs to reach the baseline's
# final success, the early minimum against the base; then the targets (a claim that does not hold
# says False), the ablations, and the earlier scaled checks.

# %%
display(report.effects)
display(report.effect_claims)
display(report.ablations)
report.claims

# %%
report.headline
