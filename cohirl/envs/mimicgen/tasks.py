"""MimicGen-style tasks (coffee, mug_cleanup, threading, hammer_cleanup) behind ``cohirl.envs.base.Task``.

NVIDIA's MimicGen environments target robosuite 1.4 and are not installable here, so the four tasks
are rebuilt from robosuite 1.5.1 primitives in ``cohirl.envs.mimicgen`` (each environment's docstring
states how it differs from the original). Robot, controller and observation contract are those of
``cohirl.envs.robosuite.tasks``: Panda, BASIC composite controller (OSC_POSE deltas + gripper, 7-d
action in [-1, 1]), 20 Hz, sparse success; ``observation.state`` is ``robot0_proprio-state`` (43-d) and
``observation.environment_state`` the task's object poses and articulation joint positions.

Option ``distribution="D0"`` (narrow, default) or ``"D1"`` (wider) picks MimicGen's initial-state width.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cohirl.envs.base import CameraConfig, Obs, Task, TaskSpec
from cohirl.envs.experts import Expert
from cohirl.envs.robosuite.sim import check_camera_names, import_robosuite, seeded_global_numpy, with_horizon
from cohirl.envs.robosuite.tasks import RobosuiteTask, robosuite_spec
from cohirl.errors import CohirlError

SIMULATOR = "robosuite"
SUITES = (SIMULATOR, "mimicgen")
_OPTIONS = {"horizon", "distribution"}


# (our name, environment class name, horizon, env_state dim, instruction); env_state: [object pose (7),
# fixture pose (7), joint position (1)]; threading: [needle, tripod] poses.
_TASKS: tuple[tuple[str, str, int, int, str], ...] = (
    ("coffee", "Coffee", 400, 15, "put the coffee pod into the coffee machine and close the lid"),
    ("mug_cleanup", "MugCleanup", 500, 15, "open the drawer, put the mug in the drawer and close it"),
    ("threading", "Threading", 400, 14, "pick up the needle and thread it through the ring of the tripod"),
    ("hammer_cleanup", "HammerCleanup", 500, 15, "open the drawer, put the hammer in the drawer and close it"),
)
SPECS: tuple[TaskSpec, ...] = tuple(robosuite_spec(*task, suites=SUITES) for task in _TASKS)


def _task_classes(sim_name: str) -> tuple[type, type]:
    """(robosuite environment class, scripted controller class) of a task; imported late (robosuite)."""
    from cohirl.envs.mimicgen import coffee, drawer, experts, threading_env

    classes = {
        "Coffee": (coffee.Coffee, experts.CoffeeExpert),
        "MugCleanup": (drawer.MugCleanup, experts.MugCleanupExpert),
        "Threading": (threading_env.Threading, experts.ThreadingExpert),
        "HammerCleanup": (drawer.HammerCleanup, experts.HammerCleanupExpert),
    }
    return classes[sim_name]


class MimicGenTask(RobosuiteTask):
    """A primitive-built MimicGen task; ``env`` is the robosuite environment (for experts)."""

    def __init__(
        self,
        spec: TaskSpec,
        cameras: CameraConfig | None = None,
        horizon: int | None = None,
        distribution: str = "D0",
    ) -> None:
        from cohirl.envs.mimicgen.base_env import check_distribution

        distribution = check_distribution(distribution)
        spec = with_horizon(spec, horizon)
        Task.__init__(self, spec, cameras)
        self.distribution = distribution
        import_robosuite(need_rendering=bool(self.cameras.names))
        with seeded_global_numpy(0):  # construction runs one reset; keep it off the caller's RNG
            self.env = _task_classes(spec.sim_name)[0](
                distribution=distribution, horizon=spec.horizon, has_offscreen_renderer=bool(self.cameras.names)
            )
        if self.cameras.names:
            check_camera_names(spec.name, self.env, self.cameras.names)

    def _environment_state(self, raw: dict[str, np.ndarray]) -> Any:
        """The task's object poses and articulation joint positions (``environment_state()`` of the env)."""
        return self.env.environment_state()


def make(spec: TaskSpec, cameras: CameraConfig | None = None, **kwargs: Any) -> MimicGenTask:
    """Registry hook. Options: ``horizon`` (truncation step count), ``distribution`` ("D0" | "D1")."""
    unknown = sorted(set(kwargs) - _OPTIONS)
    if unknown:
        raise CohirlError(
            f"{spec.name}: unknown task option(s) {unknown}; MimicGen tasks accept {sorted(_OPTIONS)}."
        )
    return MimicGenTask(spec, cameras, horizon=kwargs.get("horizon"), distribution=kwargs.get("distribution", "D0"))


class MimicGenExpert(Expert):
    """Adapter from a task's scripted phase controller to the ``Expert`` interface."""

    def __init__(self, task: MimicGenTask) -> None:
        super().__init__(task)
        self.task: MimicGenTask = task
        self.controller = _task_classes(task.spec.sim_name)[1](task.env)

    def reset(self, seed: int) -> None:
        self.controller.reset()

    def act(self, obs: Obs) -> np.ndarray:
        return np.clip(self.controller.act(), -1.0, 1.0).astype(np.float32)


def make_expert(task: Task) -> Expert:
    """Registry hook: the closed-loop scripted expert (``cohirl.envs.mimicgen.experts``)."""
    if not isinstance(task, MimicGenTask):
        raise CohirlError(f"{task.spec.name}: MimicGen experts need a MimicGenTask, got {type(task).__name__}.")
    return MimicGenExpert(task)
