"""Geometry and privileged state for the robosuite experts: poses, yaws, rotation vectors, OSC servoing.

Conventions (robosuite 1.5.1 Panda, OSC pose deltas in the base frame, which is world-aligned): the
arm input is a position delta of ``input * 0.05`` m and an axis-angle delta of ``input * 0.5`` rad
applied on the left of the current orientation; the gripper closes at +1 and opens at -1. The
gripper's *yaw* psi names the top-down orientation ``Rz(psi) @ R_DOWN``, whose fingers close along the
world direction (-sin psi, cos psi).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

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


def equivalent_yaws(yaw: float, period: float, low: float, high: float) -> list[float]:
    """All yaws ``yaw + k * period`` inside [low, high] (unwrapped)."""
    first = math.ceil((low - yaw) / period)
    last = math.floor((high - yaw) / period)
    return [yaw + k * period for k in range(first, last + 1)]


def nearest_equivalent_yaw(yaw: float, period: float, reference: float) -> float:
    """The yaw equivalent to ``yaw`` under a rotational symmetry of ``period`` nearest ``reference``."""
    return yaw + period * round((reference - yaw) / period)


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
