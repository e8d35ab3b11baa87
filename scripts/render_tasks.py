"""Render the MimicGen-style tasks: initial state, a mid-task state and the final state of an expert rollout.

Usage: ``MUJOCO_GL=egl python scripts/render_tasks.py [--out results/figures/tasks] [--seed 0]``

Writes ``<task>_initial.png``, ``<task>_midway.png`` (the moment the expert lets go of the object:
the pod over the holder, the mug/hammer in the open drawer, the needle through the ring) and
``<task>_final.png``. Drawer tasks are shown from the side (the drawer opens toward the robot and
is hidden from the front cameras); the others from ``agentview``. EGL works on this machine; OSMesa
does not (PyOpenGL finds no OSMesa library).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cohirl.envs import make_expert, make_task  # noqa: E402
from cohirl.envs.mimicgen.tasks import SPECS, MimicGenTask  # noqa: E402

CAMERAS = {"coffee": "agentview", "mug_cleanup": "sideview", "threading": "agentview", "hammer_cleanup": "sideview"}
MIDWAY_PHASES = ("release", "insert")  # first step of one of these phases is the "midway" picture


def snapshot(renderer: mujoco.Renderer, task: MimicGenTask, camera: str) -> np.ndarray:
    renderer.update_scene(task.env.sim.data._data, camera=camera)
    return renderer.render().copy()


def rollout_images(name: str, seed: int, size: int) -> dict[str, np.ndarray]:
    """Initial, midway and final frames of one expert episode (raises if the expert fails)."""
    task = make_task(name)
    assert isinstance(task, MimicGenTask)
    expert = make_expert(task)
    renderer = mujoco.Renderer(task.env.sim.model._model, size, size)
    camera = CAMERAS[name]
    obs = task.reset(seed)
    expert.reset(seed)
    images = {"initial": snapshot(renderer, task, camera)}
    info: dict[str, object] = {"success": False}
    for _ in range(task.spec.horizon):
        obs, _, terminated, truncated, info = task.step(expert.act(obs))
        if "midway" not in images and expert.controller.runner.phase.name in MIDWAY_PHASES:
            images["midway"] = snapshot(renderer, task, camera)
        if terminated or truncated:
            break
    images["final"] = snapshot(renderer, task, camera)
    renderer.close()
    task.close()
    if not info["success"]:
        raise RuntimeError(f"{name}: the expert failed on seed {seed}; pick another seed.")
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/figures/tasks"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=480)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in SPECS:
        for label, image in rollout_images(spec.name, args.seed, args.size).items():
            path = args.out / f"{spec.name}_{label}.png"
            Image.fromarray(image).save(path)
            print(path)


if __name__ == "__main__":
    main()
