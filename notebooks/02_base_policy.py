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
# # 02 — The frozen base behaviour model
# The paper's base is π0.5, frozen, re-planning an action chunk every k = 10 env steps. Here a
# lerobot chunking policy (DiffusionPolicy on `observation.state` + `observation.environment_state`)
# is trained on the stage-1 demonstrations on CPU and then frozen. Its success on the shared,
# seeded evaluation states is the level every finetuning method must beat.

# %% tags=["parameters"]
task = "square"
profile = None  # params.yaml's default profile
demos_root = None
base_dir = None
results_csv = None
train = True

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cohirl.demos.dataset import load_demo_arrays
from cohirl.eval.stats import wilson_interval
from cohirl.policies.base import base_actions_for_episode
from cohirl.policies.lerobot_base import LerobotChunkPolicy, read_base_meta
from cohirl.stages import BaseStageConfig, data_dir, results_dir, run_base_stage, stage_config

demos_path = Path(demos_root or data_dir(profile) / "demos" / task)
base_path = Path(base_dir or data_dir(profile) / "base" / task)
csv_path = Path(results_csv or results_dir(profile) / "base" / f"{task}.csv")
cfg = stage_config(BaseStageConfig, "base", task, profile)
print(cfg.train_config())

# %% [markdown]
# ## Train (EMA of weights, cosine LR decay, in-memory windowed loader) and evaluate

# %%
if train:
    metrics = run_base_stage(task, demos_path, base_path, csv_path, profile=profile)
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in metrics.items()})

# %%
meta = read_base_meta(base_path)
loss = pd.read_csv(base_path / "loss.csv") if (base_path / "loss.csv").exists() else None
if loss is not None:
    ax = loss.plot(x="step", y="loss", logy=True, figsize=(6, 3.5), legend=False)
    ax.set(ylabel="diffusion loss", title=f"{task}: base training loss")

# %%
rows = pd.read_csv(csv_path)
k, n = int(rows.success.sum()), len(rows)
low, high = wilson_interval(k, n)
print(f"base success on {task}: {k}/{n} = {k / n:.2f}  (95% Wilson [{low:.2f}, {high:.2f}])")
rows.groupby("success").length.describe()

# %% [markdown]
# ## A predicted chunk against the demonstration's actions
# The base re-plans at t = 0, k, 2k, …; between re-plans it executes the chunk open-loop.

# %%
demos = load_demo_arrays(demos_path)
episode = demos.episode_slices()[0]
policy = LerobotChunkPolicy.from_dir(base_path, zero_noise=True)
a_b = base_actions_for_episode(policy, demos.state[episode], demos.env_state[episode], cfg.replan_every)
fig, axes = plt.subplots(1, min(4, a_b.shape[1]), figsize=(14, 3), squeeze=False)
for d, ax in enumerate(axes[0]):
    ax.plot(demos.action[episode, d], label="demo (expert label)", color="black")
    ax.plot(a_b[:, d], label=f"base a_b(t), re-plan every {cfg.replan_every}", color="tab:orange")
    for t in range(0, len(a_b), cfg.replan_every):
        ax.axvline(t, color="grey", lw=0.3)
    ax.set_title(f"action dim {d}")
axes[0][0].legend(fontsize=7)
plt.tight_layout()
