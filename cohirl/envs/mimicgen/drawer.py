"""Drawer-cleanup tasks: MugCleanup and HammerCleanup share one drawer cabinet.

The cabinet is a static box open at the robot side (-x in its frame) holding a drawer on a slide
joint (joint position = how far the drawer is pulled out, 0 = closed). The drawer has a bar handle on
stand-offs that the closed gripper can hook from above to pull and push against to close.
"""

from __future__ import annotations

import numpy as np
from robosuite.models.objects import MujocoObject

from cohirl.envs.mimicgen.base_env import MimicGenEnv, Region
from cohirl.envs.mimicgen.objects import (
    DARK,
    DARK_WOOD,
    GRIP_FRICTION,
    HANDLE_BLUE,
    METAL,
    MUG_RED,
    WOOD,
    Part,
    articulated,
    build_object,
    ring_parts,
)

# Drawer interior in the drawer body's frame (origin: centre of the drawer's floor plate).
DRAWER_INTERIOR_LO = np.array([-0.08, -0.12, 0.005])
DRAWER_INTERIOR_HI = np.array([0.08, 0.12, 0.085])
DRAWER_ORIGIN = np.array([-0.035, 0.0, 0.02])  # drawer origin in the cabinet frame when closed
DRAWER_TRAVEL = 0.17
HANDLE_BAR = np.array([-0.146, 0.0, 0.035])  # handle bar centre in the drawer frame
CLOSED_TOL = 0.01  # slide position (m) below which the drawer counts as closed
SLIDE_JOINT = "cabinet_slide"


def make_cabinet() -> MujocoObject:
    """Static shell (origin on the table, front opening at -x) with a sliding drawer."""
    shell = build_object(
        "shell",
        [
            Part("box", (0.1, 0.145, 0.005), (0.005, 0.0, 0.005), DARK_WOOD),  # floor
            Part("box", (0.1, 0.145, 0.005), (0.005, 0.0, 0.12), DARK_WOOD),  # top
            Part("box", (0.1, 0.005, 0.0525), (0.005, 0.14, 0.0625), DARK_WOOD),
            Part("box", (0.1, 0.005, 0.0525), (0.005, -0.14, 0.0625), DARK_WOOD),
            Part("box", (0.005, 0.145, 0.0525), (0.1, 0.0, 0.0625), DARK_WOOD),  # back
        ],
        density=1000.0,
        free=False,
    )
    drawer = build_object(
        "drawer",
        [
            Part("box", (0.09, 0.13, 0.005), (0.0, 0.0, 0.0), WOOD),  # floor
            Part("box", (0.005, 0.13, 0.03), (-0.085, 0.0, 0.025), WOOD),  # front
            Part("box", (0.005, 0.13, 0.03), (0.085, 0.0, 0.025), WOOD),  # back
            Part("box", (0.08, 0.005, 0.03), (0.0, 0.125, 0.025), WOOD),
            Part("box", (0.08, 0.005, 0.03), (0.0, -0.125, 0.025), WOOD),
            Part("box", (0.025, 0.005, 0.005), (-0.115, 0.05, HANDLE_BAR[2]), METAL),  # handle stand-offs
            Part("box", (0.025, 0.005, 0.005), (-0.115, -0.05, HANDLE_BAR[2]), METAL),
            Part("box", (0.006, 0.07, 0.006), tuple(HANDLE_BAR), METAL),  # handle bar
        ],
        density=300.0,
        free=False,
    )
    joint = {
        "name": "slide",
        "type": "slide",
        "axis": "-1 0 0",
        "pos": "0 0 0",
        "limited": "true",
        "range": f"0 {DRAWER_TRAVEL}",
        "damping": "20",
        "frictionloss": "0.5",
        "armature": "0.5",
    }
    return articulated("cabinet", shell, drawer, tuple(DRAWER_ORIGIN), joint)


def make_mug() -> MujocoObject:
    """Hollow cup (outer radius 2.9 cm, 7 cm tall) with a floor and a handle on its local +x side."""
    # walls stop 2 mm above the floor's underside so only the floor touches the table (fewer contacts)
    parts = ring_parts(0.024, 0.029, 0.034, 12, (0.0, 0.0, 0.001), MUG_RED)
    parts += [
        Part("cylinder", (0.027, 0.004), (0.0, 0.0, -0.031), MUG_RED),  # floor
        Part("box", (0.011, 0.005, 0.004), (0.038, 0.0, 0.022), MUG_RED),  # handle
        Part("box", (0.011, 0.005, 0.004), (0.038, 0.0, -0.022), MUG_RED),
        Part("box", (0.004, 0.005, 0.026), (0.047, 0.0, 0.0), MUG_RED),
    ]
    return build_object("mug", parts, density=800.0, friction=GRIP_FRICTION)


HAMMER_GRIP = np.array([0.03, 0.0, 0.0])  # grasp point on the handle, hammer frame


def make_hammer() -> MujocoObject:
    """A 19 cm hammer lying flat: handle along local x, a head block across it at +x."""
    parts = [
        Part("box", (0.075, 0.011, 0.015), (-0.025, 0.0, 0.0), HANDLE_BLUE),  # handle
        Part("box", (0.02, 0.05, 0.015), (0.07, 0.0, 0.0), DARK),  # head
        Part("box", (0.012, 0.012, 0.015), (0.07, 0.0, 0.0), METAL),  # neck ring (visual accent)
    ]
    return build_object("hammer", parts, density=[600.0, 1200.0, 100.0], friction=GRIP_FRICTION)


class DrawerCleanupEnv(MimicGenEnv):
    """Open the drawer, put the object inside, close the drawer (base for the two cleanup tasks)."""

    object_name = "object"

    def _make_target(self) -> MujocoObject:
        raise NotImplementedError

    def _make_objects(self) -> tuple[list[MujocoObject], list[MujocoObject]]:
        self.cabinet = make_cabinet()
        self.target = self._make_target()
        return [self.target], [self.cabinet]

    def _fixture_regions(self) -> dict[str, Region]:
        return self.by_distribution(
            {"cabinet": Region((0.16, 0.16), (0.16, 0.16), (0.0, 0.0))},
            {"cabinet": Region((0.13, 0.19), (0.13, 0.2), (-0.25, 0.25))},
        )

    def _reset_articulations(self) -> None:
        self.set_joint_pos(SLIDE_JOINT, 0.0)

    def _setup_references(self) -> None:
        super()._setup_references()
        self.drawer_body_id = self.sim.model.body_name2id("cabinet_drawer_root")

    def environment_state(self) -> np.ndarray:
        """[object pose (7), cabinet pose (7), drawer slide position (1)]."""
        return np.concatenate(
            [self.body_pose(self.target.name), self.body_pose("cabinet"), [self.joint_pos(SLIDE_JOINT)]]
        )

    def drawer_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """World position and rotation matrix of the drawer body."""
        return (
            np.array(self.sim.data.body_xpos[self.drawer_body_id]),
            np.array(self.sim.data.body_xmat[self.drawer_body_id]).reshape(3, 3),
        )

    def object_in_drawer(self) -> bool:
        """The object's centre lies within the drawer's interior box (in the drawer frame)."""
        pos, rot = self.drawer_frame()
        local = rot.T @ (self.sim.data.body_xpos[self.body_ids[self.target.name]] - pos)
        return bool(np.all(local > DRAWER_INTERIOR_LO) and np.all(local < DRAWER_INTERIOR_HI))

    def drawer_closed(self) -> bool:
        return self.joint_pos(SLIDE_JOINT) < CLOSED_TOL

    def _check_success(self) -> bool:
        return self.drawer_closed() and self.object_in_drawer()


class MugCleanup(DrawerCleanupEnv):
    """MimicGen's MugCleanup rebuilt from primitives.

    Differences from the MimicGen original: the cabinet and mug are boxes/box rings instead of meshes;
    the drawer has a bar handle on stand-offs sized for hooking with the closed Panda gripper; the
    drawer opens toward the robot; D0 fixes the cabinet and samples the mug in an 8 x 8 cm patch with
    +-30 deg yaw, D1 moves and turns the cabinet (+-3 cm, +-3.5 cm, +-14 deg) and samples the mug over
    20 x 18 cm with any yaw. Success: mug centre inside the drawer's interior and the drawer within
    1 cm of closed.
    """

    def _make_target(self) -> MujocoObject:
        return make_mug()

    def _object_regions(self) -> dict[str, Region]:
        return self.by_distribution(
            {"mug": Region((-0.08, 0.0), (-0.2, -0.12), (-np.pi / 6, np.pi / 6))},
            {"mug": Region((-0.15, 0.05), (-0.28, -0.1), (-np.pi, np.pi))},
        )


class HammerCleanup(DrawerCleanupEnv):
    """MimicGen's HammerCleanup rebuilt from primitives.

    Differences from the MimicGen original: the hammer is a box handle with a box head (19 cm, no
    mesh), the cabinet is the same primitive cabinet as MugCleanup's; D0 fixes the cabinet and samples
    the hammer in an 8 x 8 cm patch with +-20 deg yaw around "head toward +y", D1 moves and
    turns the cabinet and samples the hammer over 20 x 16 cm with +-60 deg yaw. Success: hammer origin
    inside the drawer's interior and the drawer within 1 cm of closed.
    """

    def _make_target(self) -> MujocoObject:
        return make_hammer()

    def _object_regions(self) -> dict[str, Region]:
        base = np.pi / 2
        return self.by_distribution(
            {"hammer": Region((-0.08, 0.0), (-0.2, -0.12), (base - 0.35, base + 0.35))},
            {"hammer": Region((-0.15, 0.05), (-0.26, -0.1), (base - 1.05, base + 1.05))},
        )
