"""robosuite 1.5.1 manipulation tasks (Panda, OSC pose deltas + gripper) behind ``cohirl.envs.base.Task``.

Action (7-d, [-1, 1]): end-effector position delta (x 0.05 m), axis-angle rotation delta (x 0.5 rad),
both in the robot base frame, then the gripper (-1 opens, +1 closes). Reward is sparse (1 on success,
which also terminates the episode, see ``Task.step``); ``reward_shaping`` is off.

Observations always describe the *current* simulator state. robosuite itself returns values sampled
early in the control step (about one step stale) and, right after ``reset()`` or a state restore,
leaves its object->end-effector entries at zero or stale, because those sensors read a cache that the
same update pass fills later. ``_refresh_observations`` re-runs the sensors twice with a zero time
increment, which changes no simulator or sampling state.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, CameraConfig, Obs, Task, TaskSpec
from cohirl.envs.experts import Expert
from cohirl.errors import CohirlError

SIMULATOR = "robosuite"
ROBOT = "Panda"
ACTION_DIM = 7
PROPRIO_DIM = 43  # joint pos/cos/sin/vel (4x7), eef pos (3), eef quats (2x4), gripper qpos/qvel (2x2)
DEFAULT_CAMERAS = ("agentview", "robot0_eye_in_hand")
_MODEL_SEED = 0  # model-level randomness (e.g. Lift's cube size) is drawn once, at construction


@dataclass(frozen=True)
class _EnvConfig:
    """How to build one task's robosuite environment beyond the shared settings."""

    env_kwargs: dict[str, Any] = field(default_factory=dict)


def robosuite_spec(name: str, sim_name: str, horizon: int, env_state_dim: int, language: str,
                   suites: tuple[str, ...] = (SIMULATOR,)) -> TaskSpec:
    """Spec of a Panda/OSC robosuite task (shared by the MimicGen-style tasks)."""
    return TaskSpec(
        name=name,
        simulator=SIMULATOR,
        horizon=horizon,
        action_dim=ACTION_DIM,
        state_dim=PROPRIO_DIM,
        env_state_dim=env_state_dim,
        language=language,
        sim_name=sim_name,
        cameras=DEFAULT_CAMERAS,
        fps=20,
        suites=suites,
    )


SPECS: tuple[TaskSpec, ...] = (
    robosuite_spec("square", "NutAssemblySquare", 400, 14, "insert the square nut onto the square peg"),
    robosuite_spec(
        "nut_assembly",
        "NutAssembly",
        800,  # a scripted expert needs ~373 steps for both nuts (shared/stack.md)
        28,
        "put the square nut on the square peg and the round nut on the round peg",
    ),
    robosuite_spec("lift", "Lift", 200, 10, "lift the red cube"),
    robosuite_spec("can", "PickPlaceCan", 400, 14, "pick up the can and place it in its compartment of the target bin"),
    robosuite_spec("stack", "Stack", 300, 23, "stack the red cube on top of the green cube"),
)


class _BelowError(logging.Filter):
    """Drops robosuite's import-time and construction-time INFO/WARNING chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _import_robosuite(need_rendering: bool) -> Any:
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


class RobosuiteTask(Task):
    """One robosuite environment; ``env`` exposes the raw robosuite object to privileged experts."""

    def __init__(self, spec: TaskSpec, cameras: CameraConfig | None = None, horizon: int | None = None) -> None:
        if horizon is not None:
            if horizon < 1:
                raise CohirlError(f"{spec.name}: horizon must be a positive step count, got {horizon}.")
            spec = _replace_horizon(spec, horizon)
        super().__init__(spec, cameras)
        self.env = _build_env(spec, self.cameras)
        if self.cameras.names:
            _check_camera_names(spec.name, self.env, self.cameras.names)

    # -- Task hooks ---------------------------------------------------------------------------------
    def _reset(self, seed: int) -> Obs:
        with seeded_global_numpy(seed):
            self.env.reset()
        return self._observe()

    def _step(self, action: np.ndarray) -> Obs:
        self.env.step(action)
        return self._observe()

    def _success(self) -> bool:
        return bool(self.env._check_success())

    # -- extras ---------------------------------------------------------------------------------------
    def render(self, camera: str | None = None, height: int = 256, width: int = 256) -> np.ndarray:
        """RGB uint8 image (height, width, 3), top row first, from a named camera of the scene."""
        name = camera or self.spec.cameras[0]
        _check_camera_names(self.spec.name, self.env, (name,))
        if not self.env.has_offscreen_renderer:
            raise CohirlError(
                f"{self.spec.name}: this task was built without an offscreen renderer; pass "
                "cameras=CameraConfig(names=(...)) to make_task to enable rendering."
            )
        return _render(self.env, name, height, width)

    def get_sim_state(self) -> np.ndarray:
        """Everything a replay needs: MuJoCo's flattened state (time, qpos, qvel), then the gripper's
        command ramp (robosuite moves the Panda gripper command by 0.2 per step towards +-1, so the
        same action acts differently depending on the previous ones)."""
        ramp = np.asarray(self._gripper.current_action, dtype=np.float64).reshape(-1)
        return np.concatenate([self.env.sim.get_state().flatten(), ramp])

    def set_sim_state(self, state: np.ndarray) -> Obs:
        """Restore a state from ``get_sim_state`` and return its (fully refreshed) observation."""
        expected = self.get_sim_state().shape
        state = np.asarray(state, dtype=np.float64)
        if state.shape != expected:
            raise CohirlError(
                f"{self.spec.name}: sim state has shape {state.shape}, this task's is {expected}; "
                "restore only states recorded by get_sim_state() on the same task."
            )
        n_ramp = np.size(self._gripper.current_action)
        self.env.sim.set_state_from_flattened(state[:-n_ramp])
        self.env.sim.data.qacc_warmstart[:] = 0.0  # as after reset()
        self.env.sim.forward()
        self._gripper.current_action = state[-n_ramp:].copy()
        return self._observe()

    @property
    def _gripper(self) -> Any:
        return self.env.robots[0].gripper["right"]

    def close(self) -> None:
        self.env.close()

    # -- observation ----------------------------------------------------------------------------------
    def _observe(self) -> Obs:
        raw = _refresh_observations(self.env)
        obs: Obs = {
            STATE_KEY: np.asarray(raw["robot0_proprio-state"], dtype=np.float32),
            ENV_STATE_KEY: np.asarray(raw["object-state"], dtype=np.float32),
        }
        for name in self.cameras.names:
            obs[f"observation.images.{name}"] = _render(self.env, name, self.cameras.height, self.cameras.width)
        return obs


def _replace_horizon(spec: TaskSpec, horizon: int) -> TaskSpec:
    return replace(spec, horizon=int(horizon))


def _build_env(spec: TaskSpec, cameras: CameraConfig) -> Any:
    robosuite = _import_robosuite(need_rendering=bool(cameras.names))
    from robosuite.controllers import load_composite_controller_config

    controller = load_composite_controller_config(controller="BASIC", robot=ROBOT)
    try:
        with seeded_global_numpy(_MODEL_SEED):
            return robosuite.make(
                spec.sim_name,
                robots=ROBOT,
                controller_configs=controller,
                has_renderer=False,
                has_offscreen_renderer=bool(cameras.names),
                use_camera_obs=False,  # images are rendered once per step in `_observe`, fresh
                reward_shaping=False,
                control_freq=spec.fps,
                horizon=spec.horizon,
                hard_reset=False,  # ~1 ms resets instead of ~490 ms model reloads
                ignore_done=True,  # Task owns truncation and termination
            )
    except Exception as exc:
        if cameras.names and _looks_like_gl_failure(exc):
            raise CohirlError(_gl_message(spec.name, exc)) from exc
        raise


def _looks_like_gl_failure(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("egl", "osmesa", "opengl", "glfw", "gl context", "display", "render context"))


def _gl_message(task: str, exc: Exception) -> str:
    backend = os.environ.get("MUJOCO_GL", "<unset>")
    return (
        f"{task}: could not create an offscreen OpenGL context (MUJOCO_GL={backend}): {exc}. "
        "Install EGL (libegl1) or OSMesa (libosmesa6) and set MUJOCO_GL=egl or MUJOCO_GL=osmesa "
        "before starting Python, or run without cameras."
    )


def _check_camera_names(task: str, env: Any, names: tuple[str, ...]) -> None:
    known = tuple(env.sim.model.camera_names)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise CohirlError(f"{task}: unknown camera(s) {unknown}. Cameras in this scene: {', '.join(known)}.")


def _render(env: Any, camera: str, height: int, width: int) -> np.ndarray:
    try:
        image = env.sim.render(camera_name=camera, height=int(height), width=int(width))
    except Exception as exc:
        if _looks_like_gl_failure(exc):
            raise CohirlError(_gl_message("render", exc)) from exc
        raise
    return np.ascontiguousarray(image[::-1], dtype=np.uint8)  # OpenGL rows are bottom-up


def _refresh_observations(env: Any) -> dict[str, np.ndarray]:
    """Current-state observations without touching the simulator or the observables' timers.

    Two passes: the object->eef sensors read other sensors' values from ``env._obs_cache``, which
    the first pass brings up to date.
    """
    for _ in range(2):
        for observable in env._observables.values():
            if observable.modality != "image":
                observable.update(timestep=0.0, obs_cache=env._obs_cache, force=True)
    return env._get_observations()


def make(spec: TaskSpec, cameras: CameraConfig | None = None, **kwargs: Any) -> RobosuiteTask:
    """Registry hook. Accepted keyword: ``horizon`` (override the truncation step count)."""
    unknown = sorted(set(kwargs) - {"horizon"})
    if unknown:
        raise CohirlError(f"{spec.name}: unknown task option(s) {unknown}; robosuite tasks accept only `horizon`.")
    return RobosuiteTask(spec, cameras, horizon=kwargs.get("horizon"))


def make_expert(task: Task) -> Expert:
    """Registry hook: the scripted privileged expert for ``task`` (see ``robosuite_experts``)."""
    from cohirl.envs.robosuite_experts import expert_for

    if not isinstance(task, RobosuiteTask):
        raise CohirlError(f"{task.spec.name}: robosuite experts need a RobosuiteTask, got {type(task).__name__}.")
    return expert_for(task)
