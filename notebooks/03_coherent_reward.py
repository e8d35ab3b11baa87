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
# # 03 — The coherent reward and the pretrained critic
# CSIL reads the BC policy q as one soft policy-improvement step away from a prior p and solves for
# the reward: r(s, a) = α (log q(a|s) − log p(a|s)). For that reward the BC policy is already
# optimal, which is what should remove RL's initial drop. This notebook checks the shape of the
# learned reward on the task's demonstrations (small policy over the frozen base):
# 1. highest at demonstrated actions, falling off with perturbation;
# 2. ≈ 0 far from the data for the HetStat policy (no spurious reward to exploit), but not for an
#    ordinary MLP head;
# 3. after critic pretraining, demonstrated actions are near-stationary points of Q.

# %% tags=["parameters"]
task = "square"
method = "csil_residual"
seed = 0
out_csv = None

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cohirl.csil.diagnostics import action_gradient_norms, reward_far_from_data, reward_vs_perturbation
from cohirl.io import write_csv
from cohirl.stages import RESULTS_DIR, pretrained_learner

learner, demos, metrics = pretrained_learner(task, method, seed)
mlp_learner, _, _ = pretrained_learner(task, method, seed, learner_overrides={"policy_head": "mlp",
                                                                              "pretrain_critic": False})
print({k: round(v, 4) for k, v in metrics.items()})
batch = demos.sample(512, np.random.default_rng(seed))  # demonstration transitions

# %% [markdown]
# ## 1. Reward along the demonstrations vs perturbed actions

# %%
scales = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8]
pert = reward_vs_perturbation(learner, batch, scales)
ax = pert.plot(x="perturbation", y="mean_reward", marker="o", figsize=(5, 3.5), legend=False)
ax.set(xlabel="perturbation std (small-policy action space)", ylabel="mean coherent reward",
       title=f"{task}: reward peaks at the demonstrated action")
pert

# %% [markdown]
# ## 2. Far from the data: HetStat reverts to the prior, an MLP head does not

# %%
shifts = [0, 1, 3, 10, 30, 100]
far = reward_far_from_data(learner, batch, shifts).assign(head="hetstat")
far_mlp = reward_far_from_data(mlp_learner, batch, shifts).assign(head="mlp")
far_all = pd.concat([far, far_mlp])
fig, ax = plt.subplots(figsize=(5, 3.5))
for head, rows in far_all.groupby("head"):
    ax.plot(rows.shift_in_stds, rows.max_abs_reward, marker="o", label=head)
ax.set(xscale="symlog", yscale="log", xlabel="state shift (standard deviations)",
       ylabel="median max |r| over actions", title="reward far from the data")
ax.legend()
far_all

# %% [markdown]
# ## 3. Critic pretraining: demonstrated actions become stationary points of Q

# %%
grads = action_gradient_norms(learner, batch)
print(f"median ||grad_a Q||: demo actions {grads['demo']:.4f}, random actions {grads['random']:.4f}")

# %%
summary = pd.concat([pert.assign(kind="perturbation"), far_all.assign(kind="far_from_data")])
summary = summary.assign(task=task, method=method, seed=seed, grad_demo=grads["demo"], grad_random=grads["random"])
write_csv(summary, Path(out_csv or RESULTS_DIR / "reward" / f"{task}.csv"))
