"""Waypoint control on privileged poses, shared by the MimicGen-style scripted experts.

An expert is a list of phases. Each phase recomputes its end-effector target (position, yaw, gripper)
from the simulator's *current* poses every step, so a perturbed arm or a slipped object is corrected
on the next step (the experts must tolerate DART-style action noise). A phase ends when its target is
reached within tolerance (and held for ``hold`` steps) or when its own ``done`` test passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

POS_SCALE = 0.05  # metres per step at full input (robosuite OSC_POSE default)
ROT_SCALE = 0.5  # radians per step at full input
OPEN, CLOSE = -1.0, 1.0
# Orientation of robosuite's Panda grip site "pointing down" at yaw 0: the fingers close along the
# site's x axis (world y here) and its y axis points along world x.
DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])

Target = tuple[np.ndarray, float, float]  # (eef position, yaw, gripper command)


@dataclass
class Phase:
    """One waypoint: ``target()`` is re-evaluated every step."""

    name: str
    target: Callable[[], Target]
    tol: float = 0.01
    hold: int = 0  # extra steps to stay once within tolerance (e.g. to let the gripper close)
    done: Callable[[], bool] | None = None  # replaces the tolerance test when given
    speed: float = 1.0  # cap on |position input|
    timeout: int = 150  # steps before the phase gives up and moves on
    freeze: bool = False  # evaluate the target once, on entering the phase, and hold it


def eef_yaw(eef_rot: np.ndarray) -> float:
    """Gripper yaw: heading of the grip site's y axis; the fingers close across this heading."""
    return float(np.arctan2(eef_rot[1, 1], eef_rot[0, 1]))


def heading(rot: np.ndarray) -> float:
    """Heading of a body's x axis in the world x-y plane."""
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


def nearest_grasp_yaw(yaw: float, current: float, period: float = np.pi) -> float:
    """The yaw among ``yaw + k * period`` closest to ``current`` (a parallel gripper is symmetric)."""
    return float(current + (yaw - current + period / 2) % period - period / 2)


def pose_action(
    eef_pos: np.ndarray, eef_rot: np.ndarray, target: Target, speed: float = 1.0, gain: float = 1.0
) -> np.ndarray:
    """7-d OSC action that moves toward ``target`` (pointing down at the target yaw)."""
    pos, yaw, grip = target
    delta = gain * (np.asarray(pos) - eef_pos) / POS_SCALE
    norm = np.linalg.norm(delta)
    if norm > speed:
        delta *= speed / norm
    goal_rot = Rotation.from_euler("z", yaw).as_matrix() @ DOWN
    rot_err = Rotation.from_matrix(goal_rot @ eef_rot.T).as_rotvec() / ROT_SCALE
    rot_err = np.clip(rot_err, -1.0, 1.0)
    return np.concatenate([np.clip(delta, -1.0, 1.0), rot_err, [grip]])


class PhaseRunner:
    """Steps through phases; ``jump`` restarts from a named phase (e.g. after a missed grasp)."""

    def __init__(self, phases: list[Phase], smoothing: float = 0.3) -> None:
        self.phases = phases
        self.smoothing = smoothing
        self.index = 0
        self._enter_phase()

    def _enter_phase(self) -> None:
        self.steps_in_phase = self.held = 0
        self.error: np.ndarray | None = None
        self.frozen: Target | None = None

    @property
    def phase(self) -> Phase:
        return self.phases[min(self.index, len(self.phases) - 1)]

    @property
    def finished(self) -> bool:
        return self.index >= len(self.phases)

    def jump(self, name: str) -> None:
        self.index = next(i for i, p in enumerate(self.phases) if p.name == name)
        self._enter_phase()

    def act(self, eef_pos: np.ndarray, eef_rot: np.ndarray) -> np.ndarray:
        phase = self.phase
        target = self.frozen if self.frozen is not None else phase.target()
        if phase.freeze:
            self.frozen = target
        action = pose_action(eef_pos, eef_rot, target, phase.speed)
        if not self.finished:
            self._advance(phase, target, eef_pos, eef_rot)
        return action

    def _advance(self, phase: Phase, target: Target, eef_pos: np.ndarray, eef_rot: np.ndarray) -> None:
        self.steps_in_phase += 1
        # The position error is smoothed (EMA) so that action noise does not hide a reached target.
        error = np.asarray(target[0]) - eef_pos
        self.error = error if self.error is None else self.smoothing * error + (1 - self.smoothing) * self.error
        if phase.done is not None:
            reached = phase.done()
        else:
            yaw_err = abs(nearest_grasp_yaw(target[1], eef_yaw(eef_rot), 2 * np.pi) - eef_yaw(eef_rot))
            reached = bool(np.linalg.norm(self.error) < phase.tol and yaw_err < 0.15)
        self.held = self.held + 1 if reached else 0
        if self.held > phase.hold or self.steps_in_phase >= phase.timeout:
            self.index += 1
            self._enter_phase()
