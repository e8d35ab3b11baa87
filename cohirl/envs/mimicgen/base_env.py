"""Shared robosuite scaffolding for the MimicGen-style tasks.

A task subclass declares its free objects (placed by a robosuite placement sampler), its fixtures
(static bodies, possibly with a slide/hinge joint, placed by writing ``model.body_pos``), the initial
joint positions of its articulations, its environment-state vector and its success predicate.

Initial-state widths follow MimicGen: ``D0`` is a narrow distribution, ``D1`` a wider one (larger
object ranges and a randomised fixture pose). All randomness comes from the global numpy RNG, as
robosuite 1.5.1's samplers do, so seeding it before ``reset()`` fixes the initial state.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
from robosuite.controllers import load_composite_controller_config
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import TableArena
from robosuite.models.objects import MujocoObject
from robosuite.models.tasks import ManipulationTask
from robosuite.utils.placement_samplers import SequentialCompositeSampler, UniformRandomSampler
from robosuite.utils.transform_utils import convert_quat

from cohirl.envs.mimicgen.objects import yaw_quat
from cohirl.errors import CohirlError

DISTRIBUTIONS = ("D0", "D1")
TABLE_TOP = np.array((0.0, 0.0, 0.8))


@dataclass(frozen=True)
class Region:
    """Uniform ranges (world x/y relative to the table centre, yaw in radians)."""

    x: tuple[float, float]
    y: tuple[float, float]
    yaw: tuple[float, float] = (0.0, 0.0)

    def sample(self) -> tuple[float, float, float]:
        return tuple(float(np.random.uniform(*r)) for r in (self.x, self.y, self.yaw))  # type: ignore[return-value]


def check_distribution(distribution: str) -> str:
    if distribution not in DISTRIBUTIONS:
        raise CohirlError(
            f"unknown initial-state distribution {distribution!r}; valid widths are "
            f"{', '.join(DISTRIBUTIONS)} (D0 narrow, D1 wide)."
        )
    return distribution


class MimicGenEnv(ManipulationEnv):
    """Panda on a table, BASIC composite controller (OSC_POSE + gripper), sparse success reward."""

    def __init__(self, distribution: str = "D0", horizon: int = 500, **kwargs: object) -> None:
        self.distribution = check_distribution(distribution)
        self.table_full_size = (0.8, 0.8, 0.05)
        self.table_offset = TABLE_TOP
        settings: dict[str, object] = dict(
            robots="Panda",
            controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
            has_renderer=False,
            has_offscreen_renderer=False,
            use_camera_obs=False,
            control_freq=20,
            horizon=horizon,
            ignore_done=True,
            hard_reset=False,
        )
        settings.update(kwargs)
        super().__init__(**settings)  # type: ignore[arg-type]

    # -- task hooks -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _make_objects(self) -> tuple[list[MujocoObject], list[MujocoObject]]:
        """(free objects, fixtures); also stores them as attributes for the subclass."""

    @abc.abstractmethod
    def _object_regions(self) -> dict[str, Region]:
        """Placement region per free object name, for ``self.distribution``."""

    @abc.abstractmethod
    def _fixture_regions(self) -> dict[str, Region]:
        """Placement region per fixture name, for ``self.distribution``."""

    def by_distribution(self, d0: dict[str, Region], d1: dict[str, Region]) -> dict[str, Region]:
        """The placement regions for ``self.distribution``: ``d0`` (narrow) or ``d1`` (wide)."""
        return d0 if self.distribution == "D0" else d1

    def _reset_articulations(self) -> None:  # noqa: B027 - optional hook
        """Set the initial joint positions of the fixtures' joints."""

    @abc.abstractmethod
    def environment_state(self) -> np.ndarray:
        """Object poses and articulation joint positions (float64)."""

    @abc.abstractmethod
    def _check_success(self) -> bool: ...

    # -- robosuite plumbing -----------------------------------------------------------------------
    def reward(self, action: np.ndarray | None = None) -> float:
        return float(self._check_success())

    def _load_model(self) -> None:
        super()._load_model()
        xpos = self.robots[0].robot_model.base_xpos_offset["table"](self.table_full_size[0])
        self.robots[0].robot_model.set_base_xpos(xpos)
        arena = TableArena(
            table_full_size=self.table_full_size, table_friction=(1.0, 5e-3, 1e-4), table_offset=self.table_offset
        )
        arena.set_origin([0, 0, 0])
        self.free_objects, self.fixtures = self._make_objects()
        self.placement_initializer = self._make_sampler()
        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot.robot_model for robot in self.robots],
            mujoco_objects=self.fixtures + self.free_objects,
        )

    def _make_sampler(self) -> SequentialCompositeSampler:
        sampler = SequentialCompositeSampler(name="ObjectSampler")
        regions = self._object_regions()
        for obj in self.free_objects:
            region = regions[obj.name]
            sampler.append_sampler(
                UniformRandomSampler(
                    name=f"{obj.name}_sampler",
                    mujoco_objects=obj,
                    x_range=list(region.x),
                    y_range=list(region.y),
                    rotation=region.yaw,
                    rotation_axis="z",
                    ensure_object_boundary_in_range=False,
                    ensure_valid_placement=True,
                    reference_pos=self.table_offset,
                    z_offset=0.002,
                )
            )
        return sampler

    def _setup_references(self) -> None:
        super()._setup_references()
        self.body_ids = {
            obj.name: self.sim.model.body_name2id(obj.root_body) for obj in self.free_objects + self.fixtures
        }

    def _reset_internal(self) -> None:
        super()._reset_internal()
        self._place_fixtures()
        for pos, quat, obj in self.placement_initializer.sample().values():
            self.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([np.array(pos), np.array(quat)]))
        self._reset_articulations()
        self.sim.forward()

    def _place_fixtures(self) -> None:
        regions = self._fixture_regions()
        for fixture in self.fixtures:
            x, y, yaw = regions[fixture.name].sample()
            body = self.body_ids[fixture.name]
            # fixtures are modelled with their origin on the table surface
            self.sim.model.body_pos[body] = (x, y, self.table_offset[2])
            self.sim.model.body_quat[body] = yaw_quat(yaw)

    # -- helpers for subclasses -------------------------------------------------------------------
    def body_pose(self, name: str) -> np.ndarray:
        """[x, y, z, qx, qy, qz, qw] of an object's root body (robosuite's xyzw quaternion order)."""
        body = self.body_ids[name]
        quat = convert_quat(np.array(self.sim.data.body_xquat[body]), to="xyzw")
        return np.concatenate([self.sim.data.body_xpos[body], quat])

    def to_local(self, name: str, point: np.ndarray) -> np.ndarray:
        """``point`` (world) expressed in the frame of an object's root body."""
        body = self.body_ids[name]
        rot = self.sim.data.body_xmat[body].reshape(3, 3)
        return rot.T @ (np.asarray(point) - self.sim.data.body_xpos[body])

    def joint_pos(self, joint: str) -> float:
        return float(self.sim.data.get_joint_qpos(joint))

    def set_joint_pos(self, joint: str, value: float) -> None:
        self.sim.data.set_joint_qpos(joint, value)
