"""Coffee: put a pod into the machine's pod holder, then close the machine's hinged lid.

The machine (a static fixture, origin on the table, front toward the robot) is a pedestal carrying a
cup-shaped pod holder, a water tank behind it, and a lid hinged along the machine's x axis on the
holder's +y side (joint position = opening angle, 0 = closed). Joint friction holds the lid at any
angle, so the robot has to push it all the way down.
"""

from __future__ import annotations

import numpy as np
from robosuite.models.objects import MujocoObject

from cohirl.envs.mimicgen.base_env import MimicGenEnv, Region
from cohirl.envs.mimicgen.objects import (
    DARK,
    METAL,
    POD_BROWN,
    Part,
    articulated,
    build_object,
    ring_parts,
)

HOLDER_FLOOR_Z = 0.1  # machine frame: top of the holder's floor
HOLDER_INNER = 0.032
HOLDER_OUTER = 0.039
HOLDER_DEPTH = 0.045
HINGE = np.array([0.0, 0.08, HOLDER_FLOOR_Z + HOLDER_DEPTH + 0.002])  # machine frame
LID_LENGTH = 0.135  # from the hinge to the free edge
POD_RADIUS = 0.02
POD_HALF_HEIGHT = 0.018
LID_CLOSED_TOL = 0.06  # rad
LID_JOINT = "machine_hinge"
LID_GREY = (0.45, 0.45, 0.5, 1.0)


def make_machine() -> MujocoObject:
    """Static coffee machine with a hinged lid over the pod holder."""
    rim_mid = HOLDER_FLOOR_Z + HOLDER_DEPTH / 2
    base_parts = [
        Part("box", (0.045, 0.045, 0.048), (0.0, 0.0, 0.048), DARK),  # pedestal
        Part("cylinder", (HOLDER_OUTER, 0.002), (0.0, 0.0, HOLDER_FLOOR_Z - 0.002), METAL),  # floor
        Part("box", (0.05, 0.07, 0.07), (0.1, 0.0, 0.07), DARK),  # water tank
        Part("box", (0.012, 0.018, 0.004), (0.0, HINGE[1] - 0.014, HINGE[2] - 0.006), METAL),  # hinge block
    ]
    base_parts += ring_parts(HOLDER_INNER, HOLDER_OUTER, HOLDER_DEPTH / 2, 16, (0.0, 0.0, rim_mid), METAL)
    base = build_object("body", base_parts, density=1000.0, free=False)
    lid = build_object(
        "lid",
        [
            Part("box", (0.045, LID_LENGTH / 2, 0.003), (0.0, -LID_LENGTH / 2, 0.003), LID_GREY),
            Part("box", (0.02, 0.006, 0.006), (0.0, -LID_LENGTH + 0.006, 0.009), METAL),  # grip ridge
        ],
        density=500.0,
        free=False,
    )
    joint = {
        "name": "hinge",
        "type": "hinge",
        "axis": "-1 0 0",  # positive angle lifts the free edge (which points along -y)
        "pos": "0 0 0",
        "limited": "true",
        "range": "0 1.8",
        "damping": "0.02",
        "frictionloss": "0.05",  # > the lid's largest gravity torque (~0.03 N m): it stays put
    }
    return articulated("machine", base, lid, tuple(HINGE), joint)


def make_pod() -> MujocoObject:
    """Coffee pod: a cylinder (radius 2 cm, 3.6 cm tall) with a thin rim at the top."""
    parts = [
        Part("cylinder", (POD_RADIUS, POD_HALF_HEIGHT), (0.0, 0.0, 0.0), POD_BROWN),
        Part("cylinder", (POD_RADIUS + 0.002, 0.002), (0.0, 0.0, POD_HALF_HEIGHT - 0.002), METAL),
    ]
    return build_object("pod", parts, density=300.0, friction=(2.0, 0.005, 0.0001))


class Coffee(MimicGenEnv):
    """MimicGen's Coffee rebuilt from primitives.

    Differences from the MimicGen original: the machine is boxes and a 16-box cup (no meshes); its
    lid is hinged on the holder's side (axis along the machine's x) rather than at its back, so the
    robot can reach behind the raised lid and push it shut; the lid starts raised 80-95 deg (both
    widths) and is held there by joint friction; the pod is a plain cylinder with 1.2 cm radial
    clearance in the holder. D0 fixes the machine and samples the pod in an 8 x 10 cm patch; D1
    moves (10 x 12 cm) and turns (+-23 deg) the machine and samples the pod over 20 x 22 cm.
    Success: the pod sits in the holder (centre within 1.3 cm of its axis, below the rim) and the
    lid is within 0.06 rad of closed.
    """

    def _make_objects(self) -> tuple[list[MujocoObject], list[MujocoObject]]:
        self.machine = make_machine()
        self.pod = make_pod()
        return [self.pod], [self.machine]

    def _fixture_regions(self) -> dict[str, Region]:
        return self.by_distribution(
            {"machine": Region((0.08, 0.08), (0.12, 0.12), (0.0, 0.0))},
            {"machine": Region((0.03, 0.13), (0.06, 0.18), (-0.4, 0.4))},
        )

    def _object_regions(self) -> dict[str, Region]:
        return self.by_distribution(
            {"pod": Region((-0.1, -0.02), (-0.2, -0.1))},
            {"pod": Region((-0.16, 0.04), (-0.28, -0.06))},
        )

    def _reset_articulations(self) -> None:
        self.set_joint_pos(LID_JOINT, float(np.random.uniform(1.4, 1.65)))

    def environment_state(self) -> np.ndarray:
        """[pod pose (7), machine pose (7), lid opening angle (1)]."""
        return np.concatenate([self.body_pose("pod"), self.body_pose("machine"), [self.joint_pos(LID_JOINT)]])

    def pod_in_holder(self) -> bool:
        local = self.to_local("machine", self.sim.data.body_xpos[self.body_ids["pod"]])
        height = local[2] - HOLDER_FLOOR_Z
        return bool(np.hypot(local[0], local[1]) < 0.013 and POD_HALF_HEIGHT - 0.005 < height < HOLDER_DEPTH)

    def lid_closed(self) -> bool:
        return self.joint_pos(LID_JOINT) < LID_CLOSED_TOL

    def _check_success(self) -> bool:
        return self.pod_in_holder() and self.lid_closed()
