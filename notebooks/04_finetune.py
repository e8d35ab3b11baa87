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
# # 04 — Finetuning one (task, method, seed)
# CSIL (ensemble or residual small policy over the frozen base, coherent reward, pretrained
# critic, KL-to-BC actor) or the sparse-reward residual baseline — the same loop, different
# configuration. Evaluations use mode actions on the shared seeded initial states; step 0 is
# right after pretraining. Re-running resumes from the last checkpoint.

# %% tags=["parameters"]
task = "square"
method = "csil_ensemble"
seed = 0
profile = None  # params.yaml's default profile

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from cohirl.io import read_dvclive
from cohirl.stages import results_dir, run_finetune_stage

run_dir = results_dir(profile) / "runs" / task / method / str(seed)
evals = run_finetune_stage(task, method, seed, profile=profile)
evals

# %%
base = pd.read_csv(results_dir(profile) / "base" / f"{task}.csv")
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.plot(evals.env_steps, evals.success_rate, marker="o", label=method)
ax.fill_between(evals.env_steps, evals.ci_low, evals.ci_high, alpha=0.2)
ax.axhline(base.success.mean(), color="black", ls="--", label="base (frozen)")
ax.scatter([0], evals.success_rate.iloc[:1], marker="*", s=120, color="tab:orange", zorder=5,
           label="BC-small (step 0)")
ax.set(xlabel="env steps", ylabel="success rate (95% Wilson)", ylim=(-0.02, 1.02),
       title=f"{task} / {method} / seed {seed}")
ax.legend(fontsize=8)

# %%
# %% [markdown]
# Has the critic settled? Its value vs the Monte-Carlo return it should predict under the learned
# reward, at the demo states and at the evaluation episodes' first states (NaN for the sparse reward).

# %%
calibration = [c for c in ("q_demo", "mc_demo", "q_eval_init", "mc_return_eval", "critic_settled") if c in evals]
evals[["env_steps", *calibration]]

# %%
log = read_dvclive(run_dir / "live", "train")  # dvclive's train/<metric>.tsv, one column each
cols = [c for c in ("critic_td", "actor_loss", "reward_loss", "q_mean", "return") if c in log.columns]
if cols:
    log.plot(x="step", y=cols, subplots=True, figsize=(7, 1.8 * len(cols)), legend=True)
log.tail()
