"""Simulator plumbing shared by every robosuite-based task (``robosuite.tasks`` and ``mimicgen.tasks``).

Quiet imports with a headless GL backend, seeding of robosuite's global numpy RNG, horizon overrides,
camera-name checks, offscreen rendering and fresh observations. Nothing here knows a task.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from cohirl.envs.base import TaskSpec
from cohirl.errors import CohirlError


class _BelowError(logging.Filter):
    """Drops robosuite's import-time and construction-time INFO/WARNING chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def import_robosuite(need_rendering: bool) -> Any:
    """Import robosuite quietly; choose a headless GL backend first when images are needed."""
    if need_rendering:
        os.environ.setdefault("MUJOCO_GL", "egl")  # robosuite's own Linux default; osmesa also works
    logging.getLogger("robosuite_logs").addFilter(_BelowError())
    import robosuite

    return robosuite


@contextlib.contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """robosuite 1.5.1 samples placements and joint noise from the *global* numpy RNG.

    Seed it for the duration of the block and restore the caller's RNG state afterwards, so the
    simulator neither depends on nor perturbs anyone else's use of ``np.random``.
    """
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def with_horizon(spec: TaskSpec, horizon: int | None) -> TaskSpec:
    """``spec`` with its truncation step count overridden (unchanged when ``horizon`` is None)."""
    if horizon is None:
        return spec
    if horizon < 1:
        raise CohirlError(f"{spec.name}: horizon must be a positive step count, got {horizon}.")
    return replace(spec, horizon=int(horizon))


def looks_like_gl_failure(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("egl", "osmesa", "opengl", "glfw", "gl context", "display", "render context"))


def gl_message(task: str, exc: Exception) -> str:
    backend = os.environ.get("MUJOCO_GL", "<unset>")
    return (
        f"{task}: could not create an offscreen OpenGL context (MUJOCO_GL={backend}): {exc}. "
        "Install EGL (libegl1) or OSMesa (libosmesa6) and set MUJOCO_GL=egl or MUJOCO_GL=osmesa "
        "before starting Python, or run without cameras."
    )


def check_camera_names(task: str, env: Any, names: tuple[str, ...]) -> None:
    known = tuple(env.sim.model.camera_names)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise CohirlError(f"{task}: unknown camera(s) {unknown}. Cameras in this scene: {', '.join(known)}.")


def render_image(env: Any, camera: str, height: int, width: int) -> np.ndarray:
    try:
        image = env.sim.render(camera_name=camera, height=int(height), width=int(width))
    except Exception as exc:
        if looks_like_gl_failure(exc):
            raise CohirlError(gl_message("render", exc)) from exc
        raise
    return np.ascontiguousarray(image[::-1], dtype=np.uint8)  # OpenGL rows are bottom-up


def refresh_observations(env: Any) -> dict[str, np.ndarray]:
    """Current-state observations without touching the simulator or the observables' timers.

    Two passes: the object->eef sensors read other sensors' values from ``env._obs_cache``, which
    the first pass brings up to date.
    """
    for _ in range(2):
        for observable in env._observables.values():
            if observable.modality != "image":
                observable.update(timestep=0.0, obs_cache=env._obs_cache, force=True)
    return env._get_observations()
