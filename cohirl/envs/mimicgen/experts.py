"""Scripted closed-loop experts for the MimicGen-style tasks (privileged poses, re-read every step)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cohirl.envs.mimicgen import coffee as cf
from cohirl.envs.mimicgen import drawer as dr
from cohirl.envs.mimicgen import threading_env as th
from cohirl.envs.mimicgen.base_env import MimicGenEnv
from cohirl.envs.mimicgen.control import CLOSE, OPEN, Phase, PhaseRunner, Target, eef_yaw, heading, nearest_grasp_yaw

CARRY_Z = 1.0  # world height for transporting grasped objects (table top at 0.8)


class ScriptedController:
    """Base: builds phases for one episode and turns them into actions."""

    def __init__(self, env: MimicGenEnv) -> None:
        self.env = env
        self.runner = PhaseRunner(self.phases())

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def reset(self) -> None:
        self.runner = PhaseRunner(self.phases())

    # -- state readers ----------------------------------------------------------------------------
    @property
    def _eef_site(self) -> int:
        return self.env.robots[0].eef_site_id["right"]

    def eef_pos(self) -> np.ndarray:
        return np.array(self.env.sim.data.site_xpos[self._eef_site])

    def eef_rot(self) -> np.ndarray:
        return np.array(self.env.sim.data.site_xmat[self._eef_site]).reshape(3, 3)

    def body_pos(self, name: str) -> np.ndarray:
        return np.array(self.env.sim.data.body_xpos[self.env.body_ids[name]])

    def body_rot(self, name: str) -> np.ndarray:
        return np.array(self.env.sim.data.body_xmat[self.env.body_ids[name]]).reshape(3, 3)

    def body_yaw(self, name: str) -> float:
        return heading(self.body_rot(name))

    def grasp_yaw(self, yaw: float) -> float:
        return nearest_grasp_yaw(yaw, eef_yaw(self.eef_rot()))

    def gripper_opening(self) -> float:
        """Distance between the two finger joints' positions (about 0.08 fully open)."""
        data = self.env.sim.data
        left = data.get_joint_qpos("gripper0_right_finger_joint1")
        return float(left - data.get_joint_qpos("gripper0_right_finger_joint2"))

    def released(self) -> bool:
        return self.gripper_opening() > 0.07

    def lift_target(self, grip: float, z: float = CARRY_Z) -> Target:
        pos = self.eef_pos()
        return np.array([pos[0], pos[1], z]), eef_yaw(self.eef_rot()), grip

    def pick_phases(
        self,
        reach: str,
        target: Callable[[float, float], Target],
        above: float,
        near: float,
        align_tol: float,
        descend_tol: float,
    ) -> list[Phase]:
        """Grasp and lift one object: ``target(up, grip)`` is the grasp pose raised by ``up``.

        Phases: ``reach`` (``above`` the grasp, open), align (``near`` above it), descend, grasp
        (close and hold 8 steps), lift (to the carry height).
        """
        return [
            Phase(reach, lambda: target(above, OPEN), tol=0.02),
            Phase("align", lambda: target(near, OPEN), tol=align_tol),
            Phase("descend", lambda: target(0.0, OPEN), tol=descend_tol, speed=0.6),
            Phase("grasp", lambda: target(0.0, CLOSE), tol=1.0, hold=8),
            Phase("lift", lambda: self.lift_target(CLOSE), tol=0.03),
        ]

    def act(self) -> np.ndarray:
        self.check_recovery()
        return self.runner.act(self.eef_pos(), self.eef_rot())

    def check_recovery(self) -> None:
        """Hook: jump back to an earlier phase when the state shows a failure (dropped object...)."""


class DrawerCleanupExpert(ScriptedController):
    """Hook and pull the drawer open, pick the object, put it in, push the drawer closed."""

    env: dr.DrawerCleanupEnv
    grasp_height = 0.005  # eef above the object origin when grasping
    place_height = 0.055  # object origin above the drawer floor's top when released
    open_to = 0.15

    # -- geometry in the drawer frame ------------------------------------------------------------
    def drawer_point(self, local: np.ndarray, slide: float | None = None) -> np.ndarray:
        """World position of a drawer-frame point, optionally for a different slide position."""
        pos, rot = self.env.drawer_frame()
        if slide is not None:
            pos = pos + rot @ np.array([-(slide - self.env.joint_pos(dr.SLIDE_JOINT)), 0.0, 0.0])
        return pos + rot @ np.asarray(local)

    def cabinet_yaw(self) -> float:
        return self.body_yaw("cabinet")

    def hook_point(self, slide: float | None = None, up: float = 0.0) -> Target:
        local = dr.HANDLE_BAR + np.array([0.03, 0.0, up - 0.008])  # fingertips well below the bar
        return self.drawer_point(local, slide), self.grasp_yaw(self.cabinet_yaw()), CLOSE

    def push_point(self, slide: float | None = None, up: float = 0.0) -> Target:
        local = dr.HANDLE_BAR + np.array([-0.03, 0.0, up])
        return self.drawer_point(local, slide), self.grasp_yaw(self.cabinet_yaw()), CLOSE

    # -- object-specific hooks ------------------------------------------------------------------
    def object_grasp_point(self) -> np.ndarray:
        return self.body_pos(self.env.target.name) + np.array([0.0, 0.0, self.grasp_height])

    def object_grasp_yaw(self) -> float:
        return self.body_yaw(self.env.target.name)

    def place_yaw(self) -> float:
        """Gripper yaw while lowering the object into the drawer."""
        return eef_yaw(self.eef_rot())

    def grasp_target(self, up: float, grip: float) -> Target:
        return self.object_grasp_point() + np.array([0.0, 0.0, up]), self.grasp_yaw(self.object_grasp_yaw()), grip

    def place_target(self, up: float, grip: float) -> Target:
        """Move the eef so that the held object's origin goes to the drawer placement point."""
        goal = self.drawer_point(np.array([-0.01, 0.0, 0.005 + self.place_height + up]))
        obj = self.body_pos(self.env.target.name)
        eef = self.eef_pos()
        return eef + (goal - obj), self.place_yaw(), grip

    def object_held(self) -> bool:
        return bool(np.linalg.norm(self.object_grasp_point() - self.eef_pos()) < 0.04)

    def check_recovery(self) -> None:
        phase = self.runner.phase.name
        slipped_off_handle = np.linalg.norm(self.hook_point()[0] - self.eef_pos()) > 0.04
        if phase == "pull" and slipped_off_handle:
            self.runner.jump("hook_above")
        elif phase in ("reach_object", "align", "descend", "grasp", "lift") and self.env.object_in_drawer():
            self.runner.jump("release")  # dropped, but into the drawer
        elif phase in ("reach_object", "align") and self.env.joint_pos(dr.SLIDE_JOINT) < self.open_to - 0.02:
            self.runner.jump("hook_above")  # the drawer was left (or pushed back) half open
        elif phase in ("carry", "lower") and not self.object_held():
            self.runner.jump("reach_object")

    def phases(self) -> list[Phase]:
        slide = lambda: self.env.joint_pos(dr.SLIDE_JOINT)  # noqa: E731
        return [
            Phase("hook_above", lambda: self.hook_point(up=0.08), tol=0.02),
            Phase("hook_down", lambda: self.hook_point(), tol=0.012, timeout=40),
            Phase("pull", lambda: self.hook_point(slide=self.open_to + 0.01), done=lambda: slide() > self.open_to),
            Phase("leave_handle", lambda: self.lift_target(OPEN), tol=0.03),
            *self.pick_phases("reach_object", self.grasp_target, 0.1, 0.05, align_tol=0.008, descend_tol=0.008),
            Phase("carry", lambda: self.place_target(0.12, CLOSE), tol=0.015),
            Phase("lower", lambda: self.place_target(0.0, CLOSE), tol=0.01, speed=0.6),
            Phase("release", lambda: self.place_target(0.0, OPEN), done=self.released),
            Phase("retreat", lambda: self.lift_target(OPEN), tol=0.03),
            Phase("push_above", lambda: self.push_point(up=0.06), tol=0.02),
            Phase("push_down", lambda: self.push_point(), tol=0.012, timeout=40),
            Phase("push", lambda: self.push_point(slide=-0.02), done=lambda: slide() < 0.003),
            Phase("done", lambda: self.push_point(slide=0.02, up=0.05), timeout=10**6),
        ]


class MugCleanupExpert(DrawerCleanupExpert):
    """Grasp the mug across its body with the fingers perpendicular to the handle."""


class HammerCleanupExpert(DrawerCleanupExpert):
    """Grasp the hammer's handle near its centre of mass; lay it across the drawer (along its y)."""

    grasp_height = 0.0
    place_height = 0.04  # released a little above the floor: the hand spans the drawer's length

    def object_grasp_point(self) -> np.ndarray:
        pos = self.body_pos("hammer") + self.body_rot("hammer") @ dr.HAMMER_GRIP
        return pos + np.array([0.0, 0.0, self.grasp_height])

    def object_grasp_yaw(self) -> float:
        # fingers close across the handle, i.e. gripper x axis along the handle
        return self.body_yaw("hammer")

    min_wrist_yaw = -1.6  # rad; below this the Panda's last joint can hit its limit (~2.9 rad)
    _goal: float | None = None  # hammer heading chosen for this grasp (latched: no flip-flopping)

    def reset(self) -> None:
        super().reset()
        self._goal = None

    def check_recovery(self) -> None:
        super().check_recovery()
        if self.runner.phase.name == "grasp":
            self._goal = None  # a new grasp: choose the placing heading again

    def place_yaw(self) -> float:
        """Gripper yaw that lays the hammer along the drawer's y axis.

        Of the two headings (head toward +y or -y of the drawer) take the smaller turn unless it
        would drive the wrist past ``min_wrist_yaw``; the choice is latched for the grasp.
        """
        hammer_yaw, yaw = self.body_yaw("hammer"), eef_yaw(self.eef_rot())
        if self._goal is None:
            near = nearest_grasp_yaw(self.cabinet_yaw() + np.pi / 2, hammer_yaw)
            self._goal = near if yaw + wrap(near - hammer_yaw) >= self.min_wrist_yaw else near + np.pi
        return yaw + wrap(self._goal - hammer_yaw)


def wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class ThreadingExpert(ScriptedController):
    """Grasp the needle's handle, line the shaft up with the ring axis, push the tip through."""

    env: th.Threading

    def handle_target(self, up: float, grip: float) -> Target:
        pos = self.env.needle_point(th.NEEDLE_HANDLE) + np.array([0.0, 0.0, up])
        return pos, self.grasp_yaw(self.body_yaw("needle")), grip

    def tip_target(self, along: float, up: float = 0.0) -> Target:
        """Move the eef so the needle tip goes to ``along`` metres along the ring axis (ring centre = 0)."""
        rot = self.body_rot("tripod")
        goal = self.body_pos("tripod") + rot @ (th.RING_CENTER + np.array([along, 0.0, up]))
        tip = self.env.needle_point(th.NEEDLE_TIP)
        turn = wrap(heading(rot) - self.body_yaw("needle"))
        return self.eef_pos() + (goal - tip), eef_yaw(self.eef_rot()) + turn, CLOSE

    def needle_held(self) -> bool:
        handle = self.env.needle_point(th.NEEDLE_HANDLE)
        return bool(handle[2] > self.env.table_offset[2] + 0.03 and np.linalg.norm(handle - self.eef_pos()) < 0.04)

    def check_recovery(self) -> None:
        if self.runner.phase.name in ("approach", "line_up", "insert") and not self.needle_held():
            self.runner.jump("reach_handle")

    def phases(self) -> list[Phase]:
        return [
            *self.pick_phases("reach_handle", self.handle_target, 0.08, 0.035, align_tol=0.007, descend_tol=0.007),
            Phase("approach", lambda: self.tip_target(-0.07, up=0.08), tol=0.02),
            Phase("line_up", lambda: self.tip_target(-0.04), tol=0.007, speed=0.5),
            Phase("insert", lambda: self.tip_target(0.04), tol=0.008, speed=0.4),
            Phase("done", lambda: self.tip_target(0.04), timeout=10**6),
        ]


class CoffeeExpert(ScriptedController):
    """Pick the pod, drop it into the holder, then push the raised lid down along its arc."""

    env: cf.Coffee
    push_lead = 0.4  # rad: the push target runs this far ahead of the lid's angle
    push_radius = 0.1  # m from the hinge along the lid where the fingers press

    def machine_point(self, local: np.ndarray) -> np.ndarray:
        return self.body_pos("machine") + self.body_rot("machine") @ local

    def side_yaw(self) -> float:
        """Fingers close along the machine's x: the hand's thin side faces the lid."""
        return self.grasp_yaw(self.body_yaw("machine") + np.pi / 2)

    def pod_target(self, up: float, grip: float) -> Target:
        pos = self.body_pos("pod") + np.array([0.0, 0.0, 0.006 + up])  # grip high: fingers stay out of the cup
        return pos, self.side_yaw(), grip

    def holder_target(self, up: float, grip: float = CLOSE) -> Target:
        """Move the eef so that the pod's bottom is ``up`` above the holder's rim, on its axis."""
        rim = cf.HOLDER_FLOOR_Z + cf.HOLDER_DEPTH
        goal = self.machine_point(np.array([0.0, 0.0, rim + cf.POD_HALF_HEIGHT + up]))
        return self.eef_pos() + (goal - self.body_pos("pod")), self.side_yaw(), grip

    def lid_point(self, angle: float, up: float = 0.0, lift: float = 0.0) -> Target:
        """Fingers on the lid's outer face at ``angle`` (``up``: clearance along its normal, ``lift``: in z)."""
        along = np.array([0.0, -np.cos(angle), np.sin(angle)]) * self.push_radius
        normal = np.array([0.0, np.sin(angle), np.cos(angle)]) * (0.022 + up)
        return self.machine_point(cf.HINGE + along + normal + [0.0, 0.0, lift]), self.side_yaw(), CLOSE

    def rim_z(self) -> float:
        return float(self.machine_point(np.array([0.0, 0.0, cf.HOLDER_FLOOR_Z + cf.HOLDER_DEPTH]))[2])

    def lid_angle(self) -> float:
        return self.env.joint_pos(cf.LID_JOINT)

    def pod_held(self) -> bool:
        return bool(np.linalg.norm(self.pod_target(0.0, CLOSE)[0] - self.eef_pos()) < 0.035)

    def pod_over_holder(self) -> bool:
        """The (smoothed) pod position error is small enough for the pod to drop in."""
        error = self.runner.error
        return bool(error is not None and np.linalg.norm(error[:2]) < 0.005 and abs(error[2]) < 0.008)

    def check_recovery(self) -> None:
        phase = self.runner.phase.name
        if phase in ("reach_pod", "align", "descend", "grasp", "lift", "carry") and self.env.pod_in_holder():
            self.runner.jump("release")  # the pod slipped but landed in the holder anyway
        elif phase in ("over_lid", "beside_lid", "touch_lid") and not self.env.pod_in_holder():
            self.runner.jump("reach_pod")  # the pod did not drop in: pick it up again
        elif phase in ("carry", "lower") and not self.pod_held():
            self.runner.jump("reach_pod")

    def phases(self) -> list[Phase]:
        return [
            *self.pick_phases("reach_pod", self.pod_target, 0.08, 0.035, align_tol=0.007, descend_tol=0.008),
            Phase("carry", lambda: self.holder_target(0.06), tol=0.01),
            Phase("lower", lambda: self.holder_target(-0.008), done=self.pod_over_holder, speed=0.4),
            Phase("release", lambda: self.holder_target(-0.008, OPEN), done=self.released, freeze=True),
            Phase("retreat", lambda: self.lift_target(OPEN, z=self.rim_z() + 0.18), tol=0.02),
            Phase("over_lid", lambda: self.lid_point(self.lid_angle(), up=0.04, lift=0.08), tol=0.02),
            Phase("beside_lid", lambda: self.lid_point(self.lid_angle(), up=0.04), tol=0.015),
            Phase("touch_lid", lambda: self.lid_point(self.lid_angle(), up=0.005), tol=0.01),
            Phase(
                "push",
                lambda: self.lid_point(max(self.lid_angle() - self.push_lead, -0.15)),
                done=lambda: self.lid_angle() < 0.02,
                speed=0.5,
            ),
            Phase("done", lambda: self.lid_point(-0.1), timeout=10**6),
        ]
