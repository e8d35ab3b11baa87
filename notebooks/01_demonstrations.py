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
# # 01 — Expert demonstrations
# Stage 1 of the pipeline: a scripted expert with DART-style noise (executed action perturbed,
# recorded label = the expert's clean action) fills a LeRobotDataset under `data/<profile>/demos/<task>`.
# Only successful episodes are kept; the expert's success over *all* attempts is reported below.

# %% tags=["parameters"]
task = "square"
profile = None
out_root = None  # default data/<profile>/demos
summary_dir = None  # default results/<profile>/demos
n_demos = None
show_frames = True

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cohirl.demos.plots import eef_trajectory_plot, frame_strip
from cohirl.envs import get_spec
from cohirl.stages import run_demos_stage

spec = get_spec(task)
print(spec)

# %%
demos, summary = run_demos_stage(task, out_root and Path(out_root), summary_dir and Path(summary_dir), n_demos, profile)
lengths = np.array([s.stop - s.start for s in demos.episode_slices()])
print(f"{demos.n_episodes} demos, {len(demos.action)} frames in {demos.root}")
print(f"expert success {summary['expert_successes']}/{summary['expert_attempts']} = "
      f"{summary['expert_success_rate']:.2f} (95% Wilson [{summary['wilson_low']:.2f}, {summary['wilson_high']:.2f}])")
pd.DataFrame([summary]).drop(columns="noise")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].hist(lengths, bins=20, color="tab:blue")
axes[0].set(xlabel="episode length (steps)", ylabel="demos", title=f"{task}: demo lengths")
axes[1].plot(demos.action[: lengths[0]], lw=1)
axes[1].set(xlabel="step", ylabel="action (normalised)", title="expert labels, first demo")
plt.tight_layout()

# %%
eef_trajectory_plot(demos, spec, n_episodes=8)

# %% [markdown]
# A strip of rendered frames from one demonstration (needs an OpenGL context: EGL or OSMesa).

# %%
if show_frames:
    frame_strip(task, int(demos.episode_seeds[0]), n_frames=6)
