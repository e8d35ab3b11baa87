"""Stage-1 diagnostic plots of demonstrations: end-effector paths and rendered expert frames (these
launch the simulator; the paper's figures, drawn from result rows only, live in ``cohirl.report``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from cohirl.demos.dataset import DemoArrays
from cohirl.envs import CameraConfig, TaskSpec, get_spec, make_expert, make_task
from cohirl.errors import CohirlError


# Where the end-effector xyz sits in observation.state when a spec does not say: robosuite's Panda
# proprio-state is [joint pos, cos, sin, vel (4x7), eef pos (3), ...]; Meta-World's starts with it.
DEFAULT_EEF_SLICE = {"robosuite": (28, 31), "metaworld": (0, 3)}


def eef_trajectory_plot(demos: DemoArrays, spec: TaskSpec, n_episodes: int = 8) -> Figure | None:
    """End-effector paths (top view and side view), coloured by time."""
    eef = spec.eef_pos_slice or DEFAULT_EEF_SLICE.get(spec.simulator)
    if eef is None:
        print(f"{spec.name}: no end-effector slice known for observation.state; skipping the plot.")
        return None
    lo, hi = eef
    fig, (top, side) = plt.subplots(1, 2, figsize=(11, 4.5))
    for sl in demos.episode_slices()[:n_episodes]:
        xyz = demos.state[sl, lo:hi]
        t = np.linspace(0, 1, len(xyz))
        top.scatter(xyz[:, 0], xyz[:, 1], c=t, cmap="viridis", s=4)
        sc = side.scatter(xyz[:, 0], xyz[:, 2], c=t, cmap="viridis", s=4)
    top.set(xlabel="x (m)", ylabel="y (m)", title=f"{spec.name}: end-effector, top view")
    side.set(xlabel="x (m)", ylabel="z (m)", title="side view")
    fig.colorbar(sc, ax=side, label="episode time (normalised)")
    fig.tight_layout()
    return fig


def expert_frames(task_name: str, seed: int, n_frames: int = 6, size: int = 192) -> list[np.ndarray]:
    """Render ``n_frames`` evenly spaced frames of a noise-free expert episode from ``seed``."""
    task = make_task(task_name, cameras=CameraConfig(names=get_spec(task_name).cameras[:1], height=size, width=size))
    try:
        expert, obs = make_expert(task), task.reset(seed)
        expert.reset(seed)
        frames, done = [task.render(height=size, width=size)], False
        while not done:
            obs, _, terminated, truncated, _ = task.step(expert.act(obs))
            done = terminated or truncated
            frames.append(task.render(height=size, width=size))
    finally:
        task.close()
    idx = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
    return [frames[i] for i in idx]


def frame_strip(task_name: str, seed: int, n_frames: int = 6) -> Figure | None:
    """A row of rendered frames, or a printed note when no OpenGL context is available."""
    try:
        frames = expert_frames(task_name, seed, n_frames)
    except CohirlError as exc:
        print(f"frames skipped: {exc}")
        return None
    fig, axes = plt.subplots(1, len(frames), figsize=(2.2 * len(frames), 2.4))
    for ax, frame, k in zip(axes, frames, range(len(frames))):
        ax.imshow(frame)
        ax.set_axis_off()
        ax.set_title(f"{k + 1}/{len(frames)}", fontsize=8)
    fig.tight_layout()
    return fig
