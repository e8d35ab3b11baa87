"""Threading: pick a needle by its handle and push its tip through the ring of a tripod."""

from __future__ import annotations

import numpy as np
from robosuite.models.objects import MujocoObject

from cohirl.envs.mimicgen.base_env import MimicGenEnv, Region
from cohirl.envs.mimicgen.objects import (
    GRIP_FRICTION,
    HANDLE_BLUE,
    METAL,
    RING_GOLD,
    Part,
    build_object,
    ring_parts,
    rod,
)

RING_CENTER = np.array([0.0, 0.0, 0.12])  # tripod frame (origin on the table); ring axis = tripod x
RING_INNER = 0.018
RING_OUTER = 0.026
NEEDLE_TIP = np.array([0.09, 0.0, 0.0])  # needle frame; the shaft runs from the origin to the tip
NEEDLE_HANDLE = np.array([-0.035, 0.0, 0.0])  # handle centre, needle frame
TIP_PAST_RING = 0.01  # how far the tip must be beyond the ring plane


def make_tripod() -> MujocoObject:
    """Static tripod: three splayed legs carrying a vertical ring (axis along the tripod's x)."""
    hub = (0.0, 0.0, RING_CENTER[2] - RING_OUTER)
    feet = [(0.06 * np.cos(a), 0.06 * np.sin(a), 0.004) for a in (np.pi, np.pi / 3, -np.pi / 3)]
    parts = [rod(foot, hub, 0.005, METAL) for foot in feet]
    parts += ring_parts(RING_INNER, RING_OUTER, 0.005, 16, tuple(RING_CENTER), RING_GOLD, axis="x")
    return build_object("tripod", parts, density=2000.0, free=False)


def make_needle() -> MujocoObject:
    """7 cm box handle plus a 9 cm thin shaft (5 mm square) ending in the tip at local +x."""
    parts = [
        Part("box", (0.035, 0.01, 0.01), tuple(NEEDLE_HANDLE), HANDLE_BLUE),
        Part("box", (0.045, 0.0025, 0.0025), (0.045, 0.0, 0.0), METAL),
    ]
    return build_object("needle", parts, density=[1000.0, 3000.0], friction=GRIP_FRICTION)


class Threading(MimicGenEnv):
    """MimicGen's Threading rebuilt from primitives.

    Differences from the MimicGen original: the needle is a box handle with a square-section shaft
    and the tripod is three rods with a 16-box ring (inner radius 1.8 cm, shaft 5 mm), no meshes;
    the tripod is a static fixture rather than a free object; the needle is sampled with its tip
    roughly pointing along the ring axis (D0 +-23 deg, D1 +-57 deg) so that no 180-degree wrist turn
    is needed. D0 fixes the tripod and samples the needle in an 8 x 10 cm patch; D1 also moves and
    turns the tripod (10 x 15 cm, +-23 deg) and widens the needle patch to 20 x 23 cm. Success: the
    shaft crosses the ring's plane inside the ring's inner radius with the tip at least 1 cm past it.
    """

    def _make_objects(self) -> tuple[list[MujocoObject], list[MujocoObject]]:
        self.tripod = make_tripod()
        self.needle = make_needle()
        return [self.needle], [self.tripod]

    def _fixture_regions(self) -> dict[str, Region]:
        return self.by_distribution(
            {"tripod": Region((0.05, 0.05), (0.12, 0.12), (0.0, 0.0))},
            {"tripod": Region((0.0, 0.1), (0.05, 0.2), (-0.4, 0.4))},
        )

    def _object_regions(self) -> dict[str, Region]:
        return self.by_distribution(
            {"needle": Region((-0.1, -0.02), (-0.2, -0.1), (-0.4, 0.4))},
            {"needle": Region((-0.15, 0.05), (-0.28, -0.05), (-1.0, 1.0))},
        )

    def environment_state(self) -> np.ndarray:
        """[needle pose (7), tripod pose (7)]."""
        return np.concatenate([self.body_pose("needle"), self.body_pose("tripod")])

    def needle_point(self, local: np.ndarray) -> np.ndarray:
        body = self.body_ids["needle"]
        rot = self.sim.data.body_xmat[body].reshape(3, 3)
        return np.array(self.sim.data.body_xpos[body]) + rot @ local

    def ring_frame_point(self, world: np.ndarray) -> np.ndarray:
        """A world point in the ring's frame (origin at the ring centre, x along its axis)."""
        return self.to_local("tripod", world) - RING_CENTER

    def _check_success(self) -> bool:
        base = self.ring_frame_point(self.needle_point(np.zeros(3)))
        tip = self.ring_frame_point(self.needle_point(NEEDLE_TIP))
        if base[0] * tip[0] >= 0 or abs(tip[0]) < TIP_PAST_RING:
            return False  # the shaft does not cross the ring plane (or barely does)
        frac = base[0] / (base[0] - tip[0])
        crossing = base + frac * (tip - base)
        return bool(np.hypot(crossing[1], crossing[2]) < RING_INNER)
