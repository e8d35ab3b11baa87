"""Meta-World (v3, Sawyer arm) tasks behind the shared ``Task`` contract, with its scripted experts.

Observation split. Meta-World's flat 39-d observation is
``[hand xyz (3), gripper opening (1), objects (14), previous-frame copy of the first 18, goal xyz (3)]``
where ``objects`` holds up to two ``(pos 3, quat 4)`` pairs, zero-padded when a task has one object.
We split it into:

* ``observation.state`` (8, float32): ``[hand xyz, gripper, previous hand xyz, previous gripper]``
  (raw indices 0:4 and 18:22) -- the robot's own state;
* ``observation.environment_state`` (31, float32): ``[objects, previous objects, goal]``
  (raw indices 4:18, 22:36, 36:39) -- object poses and the goal, padding kept so that every task
  has the same layout.

Seeding. Meta-World ignores ``reset(seed=...)`` and by default draws one of 50 fixed configurations
per reset. We switch that off after the first reset and let the environment sample a fresh
configuration from its own ``np_random``, which ``reset(seed)`` re-seeds through ``env.seed(seed)``:
the same seed gives the same initial state, different seeds give different ones.

Horizon. Meta-World truncates at ``max_path_length`` (500) and refuses to step past it; both its
limit and gymnasium's ``TimeLimit`` are set to the spec's horizon so our truncation rule decides.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import Any

import numpy as np

from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, CameraConfig, Obs, Task, TaskSpec
from cohirl.envs.experts import Expert
from cohirl.errors import CohirlError

HORIZON = 500  # Meta-World's own episode limit (SawyerXYZEnv.max_path_length)
FPS = 80  # frame_skip 5 x timestep 0.0025 s
RAW_OBS_DIM = 39
STATE_INDICES = np.r_[0:4, 18:22]
ENV_STATE_INDICES = np.r_[4:18, 22:36, 36:39]
CAMERAS = ("corner2", "corner", "corner3", "corner4", "behindGripper", "gripperPOV")
# These cameras are defined upside down in Meta-World's XML (lerobot flips corner2 the same way).
_UPSIDE_DOWN_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})

# (our name, Meta-World name, instruction)
_TASKS: tuple[tuple[str, str, str], ...] = (
    ("assembly", "assembly-v3", "pick up the nut and place it onto the peg"),
    ("coffee_push", "coffee-push-v3", "push the mug under the coffee machine"),
    ("peg_insert_side", "peg-insert-side-v3", "insert the peg sideways into the hole"),
    ("hammer", "hammer-v3", "pick up the hammer and hammer the nail into the wall"),
    ("pick_place", "pick-place-v3", "pick up the puck and place it at the goal"),
    ("bin_picking", "bin-picking-v3", "pick the cube out of one bin and place it into the other bin"),
    ("disassemble", "disassemble-v3", "pick the nut up off the peg"),
    ("box_close", "box-close-v3", "pick up the lid and place it on the box"),
    ("stick_pull", "stick-pull-v3", "grasp the stick and pull the thermos to the goal with it"),
)

SPECS: tuple[TaskSpec, ...] = tuple(
    TaskSpec(
        name=name,
        simulator="metaworld",
        horizon=HORIZON,
        action_dim=4,
        state_dim=len(STATE_INDICES),
        env_state_dim=len(ENV_STATE_INDICES),
        language=language,
        sim_name=sim_name,
        cameras=CAMERAS,
        fps=FPS,
        suites=("metaworld",),
    )
    for name, sim_name, language in _TASKS
)


def split_observation(raw: np.ndarray) -> Obs:
    """Flat 39-d Meta-World observation -> our dict observation (see the module docstring)."""
    raw = np.asarray(raw)
    if raw.shape != (RAW_OBS_DIM,):
        raise CohirlError(f"Meta-World observation has shape {raw.shape}, expected ({RAW_OBS_DIM},).")
    return {
        STATE_KEY: raw[STATE_INDICES].astype(np.float32),
        ENV_STATE_KEY: raw[ENV_STATE_INDICES].astype(np.float32),
    }


def _find_wrapper(env: Any, attribute: str) -> Any:
    """The outermost gymnasium wrapper of ``env`` that defines ``attribute``."""
    layer = env
    while layer is not None:
        if hasattr(layer, attribute):
            return layer
        layer = getattr(layer, "env", None)
    raise CohirlError(f"no Meta-World wrapper has {attribute!r}; is metaworld==3.1.1 installed?")


def _build_gym_env(sim_name: str) -> Any:
    import gymnasium as gym
    import metaworld  # noqa: F401  (registers the Meta-World/* environments)

    return gym.make("Meta-World/MT1", env_name=sim_name, seed=0, disable_env_checker=True)


def _check_camera_names(cameras: CameraConfig) -> None:
    unknown = [name for name in cameras.names if name not in CAMERAS]
    if unknown:
        raise CohirlError(f"unknown Meta-World camera(s) {unknown}; choose from {list(CAMERAS)}.")


def _make_renderer(model: Any, cameras: CameraConfig) -> Any:
    """A MuJoCo offscreen renderer, or a CohirlError naming the fix when no GL context exists."""
    _check_camera_names(cameras)
    if "mujoco" not in sys.modules:
        os.environ.setdefault("MUJOCO_GL", "egl")
    import mujoco

    # The offscreen framebuffer must hold the image; Meta-World sizes it for 480 x 480.
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, cameras.width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, cameras.height)
    try:
        return mujoco.Renderer(model, cameras.height, cameras.width)
    except Exception as exc:  # GL backends fail with assorted error types
        raise CohirlError(
            f"cannot create a MuJoCo renderer for camera images ({type(exc).__name__}: {exc}). "
            "Set MUJOCO_GL=egl (GPU/headless) or MUJOCO_GL=osmesa (CPU) before starting Python, "
            "or run without cameras."
        ) from exc


class MetaWorldTask(Task):
    """One Meta-World v3 environment with seeded, freshly sampled initial configurations."""

    def __init__(self, spec: TaskSpec, cameras: CameraConfig | None = None) -> None:
        super().__init__(spec, cameras)
        _check_camera_names(self.cameras)
        self._env = _build_gym_env(spec.sim_name)
        self._sim = self._env.unwrapped
        self._enable_seeded_resets()
        self._sync_horizon(spec.horizon)
        self._renderer = _make_renderer(self._sim.model, self.cameras) if self.cameras.names else None
        self._raw_obs = np.zeros(RAW_OBS_DIM)
        self._last_success = False

    @property
    def raw_obs(self) -> np.ndarray:
        """The latest flat 39-d float64 observation (what Meta-World's scripted policies read)."""
        return self._raw_obs.copy()

    def _enable_seeded_resets(self) -> None:
        self._env.reset()  # the first reset selects one fixed task; required before the switch
        _find_wrapper(self._env, "toggle_sample_tasks_on_reset").toggle_sample_tasks_on_reset(False)
        self._sim._freeze_rand_vec = False
        self._sim.seeded_rand_vec = True  # sample configurations from self._sim.np_random

    def _sync_horizon(self, horizon: int) -> None:
        self._sim.max_path_length = horizon
        _find_wrapper(self._env, "_max_episode_steps")._max_episode_steps = horizon

    def _reset(self, seed: int) -> Obs:
        if seed < 0:
            raise CohirlError(f"{self.spec.name}: reset seed must be >= 0, got {seed}.")
        self._sim.seed(seed)  # replaces np_random, which drives the initial configuration
        raw, _ = self._env.reset()
        self._raw_obs = np.asarray(raw, dtype=np.float64)
        self._last_success = False
        return self._observe()

    def _step(self, action: np.ndarray) -> Obs:
        raw, _, _, _, info = self._env.step(action.astype(np.float32))
        self._raw_obs = np.asarray(raw, dtype=np.float64)
        self._last_success = bool(info["success"])
        return self._observe()

    def _success(self) -> bool:
        return self._last_success

    def _observe(self) -> Obs:
        obs = split_observation(self._raw_obs)
        for camera in self.cameras.names:
            obs[f"observation.images.{camera}"] = self._render_with(self._renderer, camera)
        return obs

    def _render_with(self, renderer: Any, camera: str) -> np.ndarray:
        renderer.update_scene(self._sim.data, camera=camera)
        image = renderer.render()
        return np.ascontiguousarray(np.rot90(image, 2)) if camera in _UPSIDE_DOWN_CAMERAS else image

    def render(self, camera: str | None = None, height: int = 256, width: int = 256) -> np.ndarray:
        """An RGB uint8 image (height, width, 3) from ``camera`` (default: the first of ``CAMERAS``)."""
        camera = camera or CAMERAS[0]
        renderer = _make_renderer(self._sim.model, CameraConfig((camera,), height, width))
        try:
            return self._render_with(renderer, camera)
        finally:
            renderer.close()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._env.close()


class MetaWorldExpert(Expert):
    """Meta-World's shipped scripted policy, reading the task's raw 39-d observation."""

    def __init__(self, task: Task) -> None:
        if not isinstance(task, MetaWorldTask):
            raise CohirlError(f"MetaWorldExpert needs a Meta-World task, got {type(task).__name__}.")
        super().__init__(task)
        from metaworld.policies import ENV_POLICY_MAP

        self._policy = ENV_POLICY_MAP[task.spec.sim_name]()
        # The policies warn that their gains exceed the action range; we clip, as the docs intend.
        warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", category=UserWarning)

    def reset(self, seed: int) -> None:
        pass  # the shipped policies are stateless functions of the observation

    def act(self, obs: Obs) -> np.ndarray:
        assert isinstance(self.task, MetaWorldTask)
        action = self._policy.get_action(self.task.raw_obs)
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)


def make(spec: TaskSpec, cameras: CameraConfig | None = None, **kwargs: Any) -> MetaWorldTask:
    """Build a task; the only option is ``horizon`` (an int overriding the spec's 500 steps)."""
    horizon = kwargs.pop("horizon", None)
    if kwargs:
        raise CohirlError(f"Meta-World tasks take only the option 'horizon', got {sorted(kwargs)}.")
    if horizon is not None:
        if int(horizon) < 1:
            raise CohirlError(f"{spec.name}: horizon must be >= 1 step, got {horizon}.")
        spec = dataclasses.replace(spec, horizon=int(horizon))
    return MetaWorldTask(spec, cameras)


def make_expert(task: Task) -> MetaWorldExpert:
    return MetaWorldExpert(task)
