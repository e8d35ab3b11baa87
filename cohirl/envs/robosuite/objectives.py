"""Per-task pick-and-place objectives for the robosuite experts (geometry from robosuite's XML assets).

An ``Objective`` names one object to pick and where to place it; ``ExpertConfig`` holds the tolerances
of the phase machine in ``cohirl.envs.robosuite.experts``. ``BUILDERS`` maps each task to its
objectives and configuration.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cohirl.envs.robosuite.geometry import (
    YAW_HIGH,
    YAW_LOW,
    Pose,
    SimView,
    equivalent_yaws,
    nearest_equivalent_yaw,
    wrap_angle,
)


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


# -- phase-machine settings (used by cohirl.envs.robosuite.experts) -------------------------------
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


# -- per-task objectives ----------------------------------------------------------------------------
TABLE_Z = 0.82  # table top of the Lift/Stack/NutAssembly arenas
PEG_TOP_Z = 0.95  # both pegs: body at z 0.85, half-height 0.1
NUT_HALF_THICKNESS = 0.01


class CubeLift(Objective):
    """Lift: grasp the cube across two faces and raise it above the success height (table + 4 cm)."""

    carry_height = TABLE_Z + 0.10

    def __init__(self, view: SimView, body_id: int) -> None:
        super().__init__(view)
        self.body_id = body_id

    def object_pose(self) -> Pose:
        return self.view.body(self.body_id)

    def plan_grasp(self, obj: Pose, eef_yaw: float) -> GraspPlan:
        # a cube is symmetric under quarter turns: take the equivalent yaw nearest the current one
        return GraspPlan(obj.pos.copy(), nearest_equivalent_yaw(obj.yaw, math.pi / 2, eef_yaw))

    def place_target(self) -> np.ndarray | None:
        return None


class CubeOnCube(CubeLift):
    """Stack: carry cube A over cube B and release it just above B's top face."""

    carry_height = TABLE_Z + 0.05 + 0.02 + 0.04  # B's top, A's half size, clearance

    def __init__(self, view: SimView, body_id: int, base_id: int, drop: float = 0.004) -> None:
        super().__init__(view, body_id)
        self.base_id = base_id
        self.drop = drop

    def place_target(self) -> np.ndarray | None:
        base = self.view.body(self.base_id).pos
        return base + np.array([0.0, 0.0, 0.025 + 0.02 + self.drop])


class CanToBin(Objective):
    """PickPlaceCan: grasp the can from above, carry it over its target compartment and drop it in."""

    carry_height = 1.0  # can centre; its bottom (centre - 6 cm) clears the bin walls
    approach_height = 0.10

    def __init__(self, view: SimView, body_id: int, target_xy: np.ndarray, release_z: float) -> None:
        super().__init__(view)
        self.body_id = body_id
        self.target_xy = np.asarray(target_xy, dtype=np.float64)
        self.release_z = release_z

    def object_pose(self) -> Pose:
        return self.view.body(self.body_id)

    def plan_grasp(self, obj: Pose, eef_yaw: float) -> GraspPlan:
        return GraspPlan(obj.pos + np.array([0.0, 0.0, 0.01]), eef_yaw)  # a cylinder: any yaw

    def place_target(self) -> np.ndarray | None:
        return np.array([self.target_xy[0], self.target_xy[1], self.release_z])


class NutOnPeg(Objective):
    """Square/round nut: grasp the free part of the handle, turn the nut, lower it over the peg.

    The handle extends along the nut's x axis; the fingers close across it, so the gripper yaw equals
    the nut heading modulo pi. The pegs stand ~0.8 m in front of the robot base, near the arm's reach:
    with the handle pointing at the robot (heading pi, a multiple of 90 degrees as the square peg
    needs) and the gripper at yaw ~0 there, the elbow stays bent; other headings, or a gripper yaw
    near pi, straighten the elbow into its joint limit, where the OSC controller gets stuck. The plan
    picks heading, grasp yaw and turn direction by that preference within the wrist's range.
    """

    carry_height = PEG_TOP_Z + 0.05  # nut centre; its underside (-1 cm) clears the peg top
    approach_height = 0.08
    heading_costs: tuple[tuple[float, float], ...] = ((math.pi, 0.0), (math.pi / 2, 3.0), (-math.pi / 2, 3.0))

    release_depth = 0.008  # nut underside below the peg top at release

    def __init__(
        self,
        view: SimView,
        nut_id: int,
        peg_id: int,
        handle_x: float,
        on_peg: Callable[[], bool],
        yaw_range: tuple[float, float] = (YAW_LOW, YAW_HIGH),
    ) -> None:
        super().__init__(view)
        self.nut_id = nut_id
        self.peg_id = peg_id
        self.handle_x = handle_x
        self._on_peg = on_peg
        self.yaw_range = yaw_range

    def object_pose(self) -> Pose:
        return self.view.body(self.nut_id)

    def plan_grasp(self, obj: Pose, eef_yaw: float) -> GraspPlan:
        handle = obj.pos + obj.rot @ np.array([self.handle_x, 0.0, 0.0])
        options = []
        for heading, heading_cost in self.heading_costs:
            shortest = wrap_angle(heading - obj.yaw)
            for turn in (shortest - 2 * math.pi, shortest, shortest + 2 * math.pi):
                for grasp_yaw in equivalent_yaws(obj.yaw, math.pi, *self.yaw_range):
                    final = grasp_yaw + turn
                    if self.yaw_range[0] <= final <= self.yaw_range[1]:
                        cost = heading_cost + abs(final) + 0.1 * abs(turn) + 0.1 * abs(grasp_yaw - eef_yaw)
                        options.append((cost, GraspPlan(handle, grasp_yaw, place_yaw=heading, turn=turn)))
        return min(options, key=lambda option: option[0])[1]

    def place_target(self) -> np.ndarray | None:
        peg = self.view.body(self.peg_id).pos
        # release with the nut's underside just inside the peg top: going lower stretches the arm
        # (the elbow locks straight at ~0.8 m reach) and the peg guides the nut down from there
        return np.array([peg[0], peg[1], PEG_TOP_Z + NUT_HALF_THICKNESS - self.release_depth])

    def done(self) -> bool:
        return self._on_peg()


SQUARE_HANDLE_X = 0.062  # handle geom spans 0.029..0.079 along x; the ring wall ends at 0.044
ROUND_HANDLE_X = 0.070  # handle 0.035..0.085; ring wall ends at 0.054
# the pegs are ~0.8 m in front of the robot base: leave them backwards, the elbow is nearly straight there
NUT_CONFIG = ExpertConfig(
    place_tol=0.004,
    lower_xy_tol=0.005,
    entry_margin=0.02,
    release_tol=0.004,  # the nut's underside is then ~4 mm inside the peg, not resting on its rim
    release_xy_tol=0.008,  # more is not over the peg (square clearance 6.75 mm): back up instead
    retreat_back=0.12,
)


DEEP_RELEASE_DEPTH = 0.045  # nut centre 3.5 cm below the peg top
SQUARE_CONFIG = ExpertConfig(place_tol=0.004, lower_xy_tol=0.005, entry_margin=0.045, retreat_back=0.12)


def _square_nut(view: SimView, release_depth: float = NutOnPeg.release_depth) -> NutOnPeg:
    env = view.env
    nut = env.obj_body_id["SquareNut"]
    # measured: from the left side of the table (y > 0) a grasp at yaw up to 3.4 still leaves the arm
    # in a good posture; on the right (the round nut) beyond ~2.5 the wrist twists and gets stuck
    objective = NutOnPeg(view, nut, env.peg1_body_id, SQUARE_HANDLE_X, lambda: _on_peg(view, nut, 0), (YAW_LOW, 3.4))
    objective.release_depth = release_depth
    return objective


def _round_nut(view: SimView) -> NutOnPeg:
    env = view.env
    nut = env.obj_body_id["RoundNut"]
    return NutOnPeg(view, nut, env.peg2_body_id, ROUND_HANDLE_X, lambda: _on_peg(view, nut, 1))


def _on_peg(view: SimView, nut_id: int, peg_index: int) -> bool:
    return bool(view.env.on_peg(view.body(nut_id).pos, peg_index))


def _square(view: SimView) -> tuple[list[Objective], ExpertConfig]:
    # One nut: nothing follows the release, so release deep on the peg (robust under action noise,
    # measured) even though that stretches the arm; nut_assembly releases shallow to keep it usable.
    return [_square_nut(view, release_depth=DEEP_RELEASE_DEPTH)], SQUARE_CONFIG


def _nut_assembly(view: SimView) -> tuple[list[Objective], ExpertConfig]:
    return [_square_nut(view), _round_nut(view)], NUT_CONFIG


def _lift(view: SimView) -> tuple[list[Objective], ExpertConfig]:
    return [CubeLift(view, view.env.cube_body_id)], ExpertConfig()


def _stack(view: SimView) -> tuple[list[Objective], ExpertConfig]:
    env = view.env
    return [CubeOnCube(view, env.cubeA_body_id, env.cubeB_body_id)], ExpertConfig(place_tol=0.005, lower_xy_tol=0.008)


def _can(view: SimView) -> tuple[list[Objective], ExpertConfig]:
    env = view.env
    target = env.target_bin_placements[env.object_to_id["can"]][:2]
    # the target compartment sits near the arm's reach: accept a few cm (the compartment is ~20 x 25 cm)
    # and any yaw drift rather than insisting on a pose the arm cannot hold there
    config = ExpertConfig(place_tol=0.04, place_yaw_tol=0.5, lower_xy_tol=0.05)
    return [CanToBin(view, env.obj_body_id["Can"], target, release_z=env.bin2_pos[2] + 0.08)], config


BUILDERS: dict[str, Callable[[SimView], tuple[list[Objective], ExpertConfig]]] = {
    "lift": _lift,
    "stack": _stack,
    "can": _can,
    "square": _square,
    "nut_assembly": _nut_assembly,
}

__all__ = ["BUILDERS", "CanToBin", "CubeLift", "CubeOnCube", "ExpertConfig", "GraspPlan", "NutOnPeg", "Objective"]
