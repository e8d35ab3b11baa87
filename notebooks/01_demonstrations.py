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
# recorded label = the expert's clean action) fills a LeRobotDataset under `data/demos/<task>`.
# Only successful episodes are kept; the expert's success over *all* attempts is reported below.

# %% tags=["parameters"]
task = "square"
profile = None
out_root = "data/demos"
summary_dir = "results/demos"
n_demos = None
show_frames = True

# %%
import json
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cohirl.config import from_dict, read_params, task_settings
from cohirl.demos.pipeline import DemosConfig, load_or_make_demos
from cohirl.demos.plots import eef_trajectory_plot, frame_strip
from cohirl.envs import get_spec
from cohirl.eval.stats import wilson_interval

settings = task_settings(read_params(), "demos", task, profile)
if n_demos is not None:
    settings["n_demos"] = int(n_demos)
cfg = from_dict(DemosConfig, settings, "demos")
spec = get_spec(task)
print(spec)
print(cfg)

# %%
demos = load_or_make_demos(task, cfg, Path(out_root) / task)
prov = demos.provenance
attempts, successes = prov["attempts"], prov["successes"]
low, high = wilson_interval(successes, attempts)
lengths = np.array([s.stop - s.start for s in demos.episode_slices()])
print(f"{demos.n_episodes} demos, {len(demos.action)} frames in {demos.root}")
print(f"expert success {successes}/{attempts} = {successes / attempts:.2f} (95% Wilson [{low:.2f}, {high:.2f}])")

# %%
summary = {"task": task, "n_demos": demos.n_episodes, "frames": int(len(demos.action)),
           "expert_attempts": attempts, "expert_successes": successes,
           "expert_success_rate": successes / attempts, "wilson_low": low, "wilson_high": high,
           "mean_length": float(lengths.mean()), "noise": asdict(cfg.noise)}
Path(summary_dir).mkdir(parents=True, exist_ok=True)
Path(summary_dir, f"{task}.json").write_text(json.dumps(summary, indent=2))
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
