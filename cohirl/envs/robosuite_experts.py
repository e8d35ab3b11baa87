"""Closed-loop scripted experts for the robosuite tasks (privileged poses read from ``sim.data``).

Every task is one or more *pick-and-place objectives*. ``PickPlaceExpert`` runs a small phase machine
(approach -> descend -> close -> lift -> transport -> lower -> release -> retreat) whose targets are
recomputed from the measured end-effector and object poses at every step, so it recovers from the
DART-style action noise the data collector adds: a lost grasp sends it back to the approach, an object
that did not end up at its goal is picked up again.

Conventions (robosuite 1.5.1 Panda, OSC pose deltas in the base frame, which is world-aligned): the
arm input is a position delta of ``input * 0.05`` m and an axis-angle delta of ``input * 0.5`` rad
applied on the left of the current orientation; the gripper closes at +1 and opens at -1. The
gripper's *yaw* psi names the top-down orientation ``Rz(psi) @ R_DOWN``, whose fingers close along the
world direction (-sin psi, cos psi).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cohirl.envs.base import Obs
from cohirl.envs.experts import Expert
from cohirl.errors import CohirlError

if TYPE_CHECKING:
    from cohirl.envs.robosuite_tasks import RobosuiteTask

POS_SCALE = 0.05  # metres per unit of position input (controller output_max)
ROT_SCALE = 0.5  # radians per unit of rotation input
OPEN, CLOSE = -1.0, 1.0
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # gripper pointing down, psi = 0
# Unwrapped gripper yaws planned for grasps. The last joint (+-2.90 rad) sits at ~0.8 - yaw (less when
# the shoulder turns, e.g. its limit came at yaw -1.71 over the square nut); past its limit the OSC
# turns the wrist with q5 instead, a twisted posture the arm was seen to get stuck in.
YAW_LOW, YAW_HIGH = -1.6, 2.5


# -- geometry -------------------------------------------------------------------------------------
def wrap_angle(angle: float) -> float:
    """Angle in (-pi, pi]."""
    return float(math.atan2(math.sin(angle), math.cos(angle)))


def rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_vector(rot: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix (the log map), robust near 0 and pi."""
    cos_angle = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(cos_angle)
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-6:
        return 0.5 * axis
    if math.pi - angle < 1e-3:  # axis from the symmetric part when sin(angle) ~ 0
        sym = (rot + np.eye(3)) / 2.0
        col = int(np.argmax(np.diag(sym)))
        direction = sym[:, col] / math.sqrt(max(sym[col, col], 1e-12))
        return angle * direction / np.linalg.norm(direction)
    return angle * axis / (2.0 * math.sin(angle))


def gripper_yaw(rot: np.ndarray) -> float:
    """Yaw psi of a (roughly top-down) gripper orientation: the finger axis is its x column."""
    return float(math.atan2(-rot[0, 0], rot[1, 0]))


def body_yaw(rot: np.ndarray) -> float:
    """Heading of a body's x axis in the world xy plane."""
    return float(math.atan2(rot[1, 0], rot[0, 0]))


def servo(
    eef_pos: np.ndarray,
    eef_rot: np.ndarray,
    target_pos: np.ndarray,
    target_rot: np.ndarray,
    gripper: float,
    gain: float = 1.0,
) -> np.ndarray:
    """Proportional OSC command towards a target pose, scaled (direction kept) into [-1, 1]."""
    move = gain * (np.asarray(target_pos) - eef_pos) / POS_SCALE
    turn = gain * rotation_vector(target_rot @ eef_rot.T) / ROT_SCALE
    move = move / max(1.0, float(np.max(np.abs(move))))
    turn = turn / max(1.0, float(np.max(np.abs(turn))))
    return np.concatenate([move, turn, [gripper]]).astype(np.float64)


# -- privileged state -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Pose:
    pos: np.ndarray
    rot: np.ndarray

    @property
    def yaw(self) -> float:
        return body_yaw(self.rot)


class SimView:
    """Read-only privileged access to the robosuite simulator state."""

    def __init__(self, env: Any) -> None:
        self.env = env
        robot = env.robots[0]
        self._eef_site = robot.eef_site_id["right"]
        self._finger_qpos = np.asarray(robot._ref_gripper_joint_pos_indexes["right"])

    def eef(self) -> Pose:
        data = self.env.sim.data
        return Pose(np.array(data.site_xpos[self._eef_site]), np.array(data.site_xmat[self._eef_site]).reshape(3, 3))

    def body(self, body_id: int) -> Pose:
        data = self.env.sim.data
        return Pose(np.array(data.body_xpos[body_id]), np.array(data.body_xmat[body_id]).reshape(3, 3))

    def finger_gap(self) -> float:
        """Opening between the two fingers in metres (0 when fully closed, ~0.08 fully open)."""
        qpos = self.env.sim.data.qpos[self._finger_qpos]
        return float(qpos[0] - qpos[1])

    def body_id(self, name: str) -> int:
        return int(self.env.sim.model.body_name2id(name))


# -- objectives -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraspPlan:
    """Where the grip site goes to grasp, with which gripper yaw, and the object yaw wanted later."""

    grasp_pos: np.ndarray
    grasp_yaw: float  # unwrapped gripper yaw at the grasp
    place_yaw: float | None = None  # object heading at release; None keeps whatever it has
    turn: float = 0.0  # signed gripper (= object) rotation planned between grasp and release


class Objective(abc.ABC):
    """One object to pick and (optionally) place, described on privileged poses."""

    carry_height: float  # object-reference z while transporting (clears walls, pegs, cubes)
    approach_height: float = 0.08  # grip-site height above the grasp point before descending

    def __init__(self, view: SimView) -> None:
        self.view = view

    @abc.abstractmethod
    def object_pose(self) -> Pose:
        """Pose of the object's reference point (the point ``place_target`` is about)."""

    @abc.abstractmethod
    def plan_grasp(self, obj: Pose, eef_yaw: float) -> GraspPlan:
        """Grasp for the object's current pose; ``eef_yaw`` is the gripper's unwrapped yaw now."""

    @abc.abstractmethod
    def place_target(self) -> np.ndarray | None:
        """Object-reference position at which to release; None when lifting alone is the goal."""

    def done(self) -> bool:
        """Whether this objective is achieved (used to move on in multi-object tasks)."""
        return False


def equivalent_yaws(yaw: float, period: float, low: float, high: float) -> list[float]:
    """All yaws ``yaw + k * period`` inside [low, high] (unwrapped)."""
    first = math.ceil((low - yaw) / period)
    last = math.floor((high - yaw) / period)
    return [yaw + k * period for k in range(first, last + 1)]


def nearest_equivalent_yaw(yaw: float, period: float, reference: float) -> float:
    """The yaw equivalent to ``yaw`` under a rotational symmetry of ``period`` nearest ``reference``."""
    return yaw + period * round((reference - yaw) / period)


# -- the phase machine ------------------------------------------------------------------------------
@dataclass
class ExpertConfig:
    """Tolerances and timings of the pick-and-place phase machine (metres, radians, steps)."""

    approach_tol: float = 0.012  # xy/z error to leave the approach phase
    yaw_tol: float = 0.12  # gripper-yaw error to leave the approach phase
    descend_tol: float = 0.008  # grip-site error at the grasp point before closing
    close_steps: int = 10  # the Panda fingers close fully in ~11 steps
    release_steps: int = 8
    lost_tol: float = 0.03  # object drifted this far from where it sat in the hand -> regrasp
    min_gap: float = 0.004  # fingers closer than this hold nothing
    place_tol: float = 0.008  # object xy error before lowering
    place_yaw_tol: float = 0.06
    turn_first_tol: float = 0.3  # larger planned turns happen on the spot before travelling
    release_tol: float = 0.01  # object z error at the release height
    release_xy_tol: float = math.inf  # release only this well centred; worse -> back up and re-centre
    lower_xy_tol: float = 0.016  # above the entry height, hold z until the object is this well centred
    entry_margin: float = 0.05  # entry height = release height + this (e.g. the nut reaching the peg top)
    retreat_height: float = 0.08
    retreat_back: float = 0.0  # also move this far towards the robot (-x) to unbend a stretched arm
    gain: float = 1.0


class PickPlaceExpert(Expert):
    """Runs a sequence of objectives with a closed-loop approach/grasp/carry/place phase machine.

    Gripper yaws are tracked *unwrapped* (accumulated from per-step changes): the Panda's last joint
    spans only ~5.8 rad, so a turn must go the way the plan chose, not the shortest way round.
    """

    def __init__(self, task: RobosuiteTask, objectives: list[Objective], config: ExpertConfig | None = None) -> None:
        super().__init__(task)
        self.view = objectives[0].view
        self.objectives = objectives
        self.config = config or ExpertConfig()
        self.reset(0)

    def reset(self, seed: int) -> None:
        self._index = 0
        self._phase = "approach"
        self._timer = 0
        self._plan: GraspPlan | None = None
        self._hold_offset = np.zeros(3)  # grip site in the object's frame while grasped
        self._anchor = np.zeros(3)  # release / retreat reference point
        self._yaw: float | None = None  # unwrapped gripper yaw

    @property
    def phase(self) -> str:
        return self._phase

    def act(self, obs: Obs) -> np.ndarray:
        objective = self.objectives[min(self._index, len(self.objectives) - 1)]
        eef, obj = self.view.eef(), objective.object_pose()
        self._track_yaw(eef)
        target_pos, target_yaw, gripper = getattr(self, f"_{self._phase}")(objective, eef, obj)
        assert self._yaw is not None
        step = float(np.clip(target_yaw - self._yaw, -1.0, 1.0))  # short enough to turn the planned way
        target_rot = rot_z(self._yaw + step) @ R_DOWN
        return np.clip(servo(eef.pos, eef.rot, target_pos, target_rot, gripper, self.config.gain), -1.0, 1.0)

    def _track_yaw(self, eef: Pose) -> None:
        measured = gripper_yaw(eef.rot)
        self._yaw = measured if self._yaw is None else self._yaw + wrap_angle(measured - self._yaw)

    def _goto(self, phase: str) -> None:
        self._phase = phase
        self._timer = 0

    # -- phases: each returns (target position, target unwrapped gripper yaw, gripper command) ------
    def _approach(self, objective: Objective, eef: Pose, obj: Pose) -> tuple[np.ndarray, float, float]:
        assert self._yaw is not None
        plan = objective.plan_grasp(obj, self._yaw)
        above = plan.grasp_pos + np.array([0.0, 0.0, objective.approach_height])
        error = above - eef.pos
        if np.linalg.norm(error[:2]) > 0.03 and error[2] > 0.02:
            above = np.array([eef.pos[0], eef.pos[1], above[2]])  # rise first, never sweep low
        aligned = abs(plan.grasp_yaw - self._yaw) < self.config.yaw_tol
        if np.max(np.abs(error)) < self.config.approach_tol and aligned:
            self._goto("descend")
        return above, plan.grasp_yaw, OPEN

    def _descend(self, objective: Objective, eef: Pose, obj: Pose) -> tuple[np.ndarray, float, float]:
        assert self._yaw is not None
        plan = objective.plan_grasp(obj, self._yaw)
        error = plan.grasp_pos - eef.pos
        if np.linalg.norm(error[:2]) > 0.025:  # pushed away: line up from above again
            self._goto("approach")
        elif np.linalg.norm(error) < self.config.descend_tol:
            self._plan = plan
            self._goto("close")
        return plan.grasp_pos, plan.grasp_yaw, OPEN

    def _close(self, objective: Objective, eef: Pose, obj: Pose) -> tuple[np.ndarray, float, float]:
        assert self._plan is not None
        self._timer += 1
        if self._timer >= self.config.close_steps:
            self._hold_offset = obj.rot.T @ (eef.pos - obj.pos)
            self._goto("lift")
        return self._plan.grasp_pos, self._plan.grasp_yaw, CLOSE

    def _lift(self, objective: Objective, eef: Pose, obj: Pose) -> tuple[np.ndarray, float, float]:
        if self._lost(obj, eef):
            return self._regrasp(eef)
        target = eef.pos + np.array([0.0, 0.0, objective.carry_height - obj.pos[2]])
        if objective.place_target() is not None and obj.pos[2] > objective.carry_height - 0.02:
            self._anchor = eef.pos.copy()
            self._goto("transport")
        assert self._plan is not None
        return target, self._plan.grasp_yaw, CLOSE  # turn only once clear of the table

    def _transport(self, objective: Objective, eef: Pose, obj: Pose) -> tuple[np.ndarray, float, float]:
        if self._lost(obj, eef):
            return self._regrasp(eef)
        goal = objective.place_target()
        assert goal is not None
        carry = np.array([goal[0], goal[1], objective.carry_height])
        target_yaw = self._final_yaw(obj)
        xy_error = np.linalg.norm(carry[:2] - obj.pos[:2])
        assert self._yaw is not None
        if abs(target_yaw - self._yaw) > self.config.turn_first_tol:
            # turn on the spot first: turning while travelling swings the object (and the hand)
            # out towards the edge of the workspace
            return np.array([self._anchor[0], self._anchor[1], eef.pos[2] + carry[2] - obj.pos[2]]), target_yaw, CLOSE
        if xy_error < self.config.place_tol and abs(target_yaw - self._yaw) < self.config.place_yaw_tol:
            self._goto("lower")
        return eef.pos + (carry - obj.pos), target_yaw, CLOSE

    def _lower(self, objective: Objective, eef: Pose, obj: Pose) -> tuple[np.ndarray, float, float]:
        if self._lost(obj, eef):
            return self._regrasp(eef)
        goal = objective.place_target()
        assert goal is not None
        xy_error = float(np.linalg.norm(goal[:2] - obj.pos[:2]))
        entry_z = goal[2] + self.config.entry_margin
        if xy_error > self.config.release_xy_tol:  # e.g. sitting on the peg's rim: back up, re-centre
            target_z = max(obj.pos[2], entry_z + 0.01)
        elif xy_error > self.config.lower_xy_tol and obj.pos[2] > entry_z:
            target_z = obj.pos[2]  # re-centre before entering
        else:
            target_z = goal[2]
        target = np.array([goal[0], goal[1], target_z])
        if obj.pos[2] - goal[2] < self.config.release_tol and xy_error <= self.config.release_xy_tol:
            self._anchor = eef.pos.copy()
            self._goto("release")
        return eef.pos + (target - obj.pos), self._final_yaw(obj), CLOSE

    def _release(self, objective: Objective, eef: Pose, obj: Pose) -> tuple[np.ndarray, float, float]:
        self._timer += 1
        if self._timer >= self.config.release_steps:
            self._goto("retreat")
        assert self._yaw is not None
        return self._anchor, self._yaw, OPEN

    def _retreat(self, objective: Objective, eef: Pose, obj: Pose) -> tuple[np.ndarray, float, float]:
        target = self._anchor + np.array([-self.config.retreat_back, 0.0, self.config.retreat_height])
        if np.max(np.abs(target - eef.pos)) < 0.015:
            if objective.done():
                self._index += 1
            self._goto("approach")  # next objective, or a second try at this one
        assert self._yaw is not None
        return target, self._yaw, OPEN

    # -- helpers ------------------------------------------------------------------------------------
    def _lost(self, obj: Pose, eef: Pose) -> bool:
        expected = obj.pos + obj.rot @ self._hold_offset
        slipped = np.linalg.norm(expected - eef.pos) > self.config.lost_tol
        return bool(slipped or self.view.finger_gap() < self.config.min_gap)

    def _regrasp(self, eef: Pose) -> tuple[np.ndarray, float, float]:
        self._goto("approach")
        assert self._yaw is not None
        return eef.pos + np.array([0.0, 0.0, 0.02]), self._yaw, OPEN

    def _final_yaw(self, obj: Pose) -> float:
        """Gripper yaw that brings the held object to the planned heading, turning the planned way.

        Far from the goal the plan's own final yaw is used (keeps the direction of the turn); near it,
        the measured object heading corrects any twist of the object inside the grasp.
        """
        assert self._plan is not None and self._yaw is not None
        if self._plan.place_yaw is None:
            return self._plan.grasp_yaw
        planned = self._plan.grasp_yaw + self._plan.turn
        if abs(planned - self._yaw) > math.pi / 2:
            return planned
        return self._yaw + wrap_angle(self._plan.place_yaw - obj.yaw)


def expert_for(task: RobosuiteTask) -> Expert:
    """The scripted expert for one of the registered robosuite tasks."""
    from cohirl.envs import robosuite_experts_objectives as objectives

    builders = objectives.BUILDERS
    if task.spec.name not in builders:
        raise CohirlError(f"no scripted expert for robosuite task {task.spec.name!r}; known: {sorted(builders)}.")
    view = SimView(task.env)
    objective_list, config = builders[task.spec.name](view)
    return PickPlaceExpert(task, objective_list, config)
