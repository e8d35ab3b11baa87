"""The task contract shared by every simulator: gymnasium-style, dict observations, sparse reward.

Observation: ``{"observation.state": float32[state_dim], "observation.environment_state":
float32[env_state_dim]}`` (plus image keys when cameras are enabled). Actions are normalised to
[-1, 1]. Reward is 1.0 on success and the episode terminates on success; it is truncated at the
task's fixed horizon.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cohirl.errors import CohirlError

Obs = dict[str, np.ndarray]
STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"


@dataclass(frozen=True)
class TaskSpec:
    """Static facts about a task, known without building the simulator."""

    name: str
    simulator: str  # "robosuite" | "metaworld"
    horizon: int  # truncation step count
    action_dim: int
    state_dim: int
    env_state_dim: int
    language: str  # instruction string (for language-conditioned bases such as pi0.5)
    sim_name: str  # the simulator's own name for the environment
    cameras: tuple[str, ...] = ()
    fps: int = 20
    suites: tuple[str, ...] = field(default=())
    # [start, stop) of the end-effector xyz inside observation.state (for trajectory plots)
    eef_pos_slice: tuple[int, int] | None = None


@dataclass(frozen=True)
class CameraConfig:
    """Optional image observations, off by default (``names`` empty)."""

    names: tuple[str, ...] = ()
    height: int = 84
    width: int = 84


class Task(abc.ABC):
    """One episode-based simulator task. Subclasses implement the ``_``-prefixed hooks."""

    spec: TaskSpec

    def __init__(self, spec: TaskSpec, cameras: CameraConfig | None = None) -> None:
        self.spec = spec
        self.cameras = cameras or CameraConfig()
        self._t = 0
        self._done = True

    # -- public API ---------------------------------------------------------------------------
    def reset(self, seed: int) -> Obs:
        """Reset to the initial state determined by ``seed`` (same seed -> same state)."""
        self._t = 0
        self._done = False
        return self._check_obs(self._reset(int(seed)))

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise CohirlError(f"{self.spec.name}: step() after the episode ended; call reset(seed) first.")
        action = self._check_action(action)
        obs = self._check_obs(self._step(action))
        self._t += 1
        success = bool(self._success())
        terminated = success
        truncated = (not terminated) and self._t >= self.spec.horizon
        self._done = terminated or truncated
        info = {"success": success, "t": self._t}
        return obs, float(success), terminated, truncated, info

    @property
    def t(self) -> int:
        return self._t

    def is_success(self) -> bool:
        return bool(self._success())

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def render(self, camera: str | None = None, height: int = 256, width: int = 256) -> np.ndarray:
        raise CohirlError(f"{self.spec.name}: rendering is not supported by this task.")

    # -- hooks ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _reset(self, seed: int) -> Obs: ...

    @abc.abstractmethod
    def _step(self, action: np.ndarray) -> Obs: ...

    @abc.abstractmethod
    def _success(self) -> bool: ...

    # -- checks ----------------------------------------------------------------------------------
    def _check_action(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape[0] != self.spec.action_dim:
            raise CohirlError(
                f"{self.spec.name}: action has {a.shape[0]} dimensions, the task expects "
                f"{self.spec.action_dim}. Check the policy's action size against `cohirl tasks`."
            )
        if not np.all(np.isfinite(a)):
            raise CohirlError(f"{self.spec.name}: action contains NaN/inf at step {self._t}: {a}")
        return np.clip(a, -1.0, 1.0)

    def _check_obs(self, obs: Obs) -> Obs:
        for key, dim in ((STATE_KEY, self.spec.state_dim), (ENV_STATE_KEY, self.spec.env_state_dim)):
            value = obs[key]
            if value.shape != (dim,) or value.dtype != np.float32:
                raise AssertionError(f"{self.spec.name}: {key} is {value.dtype}{value.shape}, spec says ({dim},)")
        return obs
