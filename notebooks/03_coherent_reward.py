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
profile = None  # params.yaml's default profile
out_csv = None

# %%
import matplotlib.pyplot as plt

from cohirl.stages import run_reward_stage

diag = run_reward_stage(task, method, seed, out_csv, profile=profile)
print({k: round(v, 4) for k, v in diag.metrics.items()})

# %% [markdown]
# ## 1. Reward along the demonstrations vs perturbed actions

# %%
ax = diag.perturbation.plot(x="perturbation", y="mean_reward", marker="o", figsize=(5, 3.5), legend=False)
ax.set(xlabel="perturbation std (small-policy action space)", ylabel="mean coherent reward",
       title=f"{task}: reward peaks at the demonstrated action")
diag.perturbation

# %% [markdown]
# ## 2. Far from the data: HetStat reverts to the prior, an MLP head does not

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
for head, rows in diag.far_from_data.groupby("head"):
    ax.plot(rows.shift_in_stds, rows.max_abs_reward, marker="o", label=head)
ax.set(xscale="symlog", yscale="log", xlabel="state shift (standard deviations)",
       ylabel="median max |r| over actions", title="reward far from the data")
ax.legend()
diag.far_from_data

# %% [markdown]
# ## 3. Critic pretraining: demonstrated actions become stationary points of Q

# %%
grads = diag.action_gradients
print(f"median ||grad_a Q||: demo actions {grads['demo']:.4f}, random actions {grads['random']:.4f}")
