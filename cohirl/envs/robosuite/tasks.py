"""robosuite 1.5.1 manipulation tasks (Panda, OSC pose deltas + gripper) behind ``cohirl.envs.base.Task``.

Action (7-d, [-1, 1]): end-effector position delta (x 0.05 m), axis-angle rotation delta (x 0.5 rad),
both in the robot base frame, then the gripper (-1 opens, +1 closes). Reward is sparse (1 on success,
which also terminates the episode, see ``Task.step``); ``reward_shaping`` is off.

Observations always describe the *current* simulator state. robosuite itself returns values sampled
early in the control step (about one step stale) and, right after ``reset()`` or a state restore,
leaves its object->end-effector entries at zero or stale, because those sensors read a cache that the
same update pass fills later. ``sim.refresh_observations`` re-runs the sensors twice with a zero time
increment, which changes no simulator or sampling state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, CameraConfig, Obs, Task, TaskSpec
from cohirl.envs.experts import Expert
from cohirl.envs.robosuite.sim import (
    check_camera_names,
    gl_message,
    import_robosuite,
    looks_like_gl_failure,
    refresh_observations,
    render_image,
    seeded_global_numpy,
    with_horizon,
)
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


class RobosuiteTask(Task):
    """One robosuite environment; ``env`` exposes the raw robosuite object to privileged experts."""

    def __init__(self, spec: TaskSpec, cameras: CameraConfig | None = None, horizon: int | None = None) -> None:
        spec = with_horizon(spec, horizon)
        super().__init__(spec, cameras)
        self.env = _build_env(spec, self.cameras)
        if self.cameras.names:
            check_camera_names(spec.name, self.env, self.cameras.names)

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
        check_camera_names(self.spec.name, self.env, (name,))
        if not self.env.has_offscreen_renderer:
            raise CohirlError(
                f"{self.spec.name}: this task was built without an offscreen renderer; pass "
                "cameras=CameraConfig(names=(...)) to make_task to enable rendering."
            )
        return render_image(self.env, name, height, width)

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
        raw = refresh_observations(self.env)
        obs: Obs = {
            STATE_KEY: np.asarray(raw["robot0_proprio-state"], dtype=np.float32),
            ENV_STATE_KEY: np.asarray(self._environment_state(raw), dtype=np.float32),
        }
        for name in self.cameras.names:
            obs[f"observation.images.{name}"] = render_image(self.env, name, self.cameras.height, self.cameras.width)
        return obs

    def _environment_state(self, raw: dict[str, np.ndarray]) -> Any:
        """``observation.environment_state`` before the float32 cast; ``raw`` is fresh observations."""
        return raw["object-state"]


def _build_env(spec: TaskSpec, cameras: CameraConfig) -> Any:
    robosuite = import_robosuite(need_rendering=bool(cameras.names))
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
        if cameras.names and looks_like_gl_failure(exc):
            raise CohirlError(gl_message(spec.name, exc)) from exc
        raise


def make(spec: TaskSpec, cameras: CameraConfig | None = None, **kwargs: Any) -> RobosuiteTask:
    """Registry hook. Accepted keyword: ``horizon`` (override the truncation step count)."""
    unknown = sorted(set(kwargs) - {"horizon"})
    if unknown:
        raise CohirlError(f"{spec.name}: unknown task option(s) {unknown}; robosuite tasks accept only `horizon`.")
    return RobosuiteTask(spec, cameras, horizon=kwargs.get("horizon"))


def make_expert(task: Task) -> Expert:
    """Registry hook: the scripted privileged expert for ``task`` (see ``cohirl.envs.robosuite.experts``)."""
    from cohirl.envs.robosuite.experts import expert_for

    if not isinstance(task, RobosuiteTask):
        raise CohirlError(f"{task.spec.name}: robosuite experts need a RobosuiteTask, got {type(task).__name__}.")
    return expert_for(task)
