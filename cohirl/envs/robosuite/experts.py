"""Closed-loop scripted experts for the robosuite tasks (privileged poses read from ``sim.data``).

Every task is one or more *pick-and-place objectives* (``cohirl.envs.robosuite.objectives``).
``PickPlaceExpert`` runs a small phase machine (approach -> descend -> close -> lift -> transport ->
lower -> release -> retreat) whose targets are recomputed from the measured end-effector and object
poses at every step, so it recovers from the DART-style action noise the data collector adds: a lost
grasp sends it back to the approach, an object that did not end up at its goal is picked up again.
Conventions (action scaling, gripper yaw) are those of ``cohirl.envs.robosuite.geometry``.
"""

from __future__ import annotations

import math

import numpy as np

from cohirl.envs.base import Obs, Task
from cohirl.envs.experts import Expert
from cohirl.envs.robosuite.geometry import CLOSE, OPEN, R_DOWN, Pose, SimView, gripper_yaw, rot_z, servo, wrap_angle
from cohirl.envs.robosuite.objectives import BUILDERS, ExpertConfig, GraspPlan, Objective
from cohirl.errors import CohirlError


class PickPlaceExpert(Expert):
    """Runs a sequence of objectives with a closed-loop approach/grasp/carry/place phase machine.

    Gripper yaws are tracked *unwrapped* (accumulated from per-step changes): the Panda's last joint
    spans only ~5.8 rad, so a turn must go the way the plan chose, not the shortest way round.
    """

    def __init__(self, task: Task, objectives: list[Objective], config: ExpertConfig | None = None) -> None:
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


def expert_for(task: Task) -> Expert:
    """The scripted expert for one of the registered robosuite tasks (a ``RobosuiteTask``: reads ``task.env``)."""
    if task.spec.name not in BUILDERS:
        raise CohirlError(f"no scripted expert for robosuite task {task.spec.name!r}; known: {sorted(BUILDERS)}.")
    view = SimView(task.env)  # type: ignore[attr-defined]
    objective_list, config = BUILDERS[task.spec.name](view)
    return PickPlaceExpert(task, objective_list, config)
