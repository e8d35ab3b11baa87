"""Task registry: named tasks behind one interface (``cohirl.envs.base.Task``).

Each simulator has a package (``robosuite``, ``mimicgen``, ``metaworld``) whose ``tasks`` module, named
in ``_MODULES``, exposes ``SPECS`` (static ``TaskSpec`` tuples, importable without starting
the simulator), ``make(spec, cameras, **kwargs) -> Task`` and ``make_expert(task) -> Expert``.
"""

from __future__ import annotations

import importlib
from typing import Any

from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, CameraConfig, Obs, Task, TaskSpec
from cohirl.envs.experts import Expert
from cohirl.errors import CohirlError

_MODULES = (
    "cohirl.envs.robosuite.tasks",
    "cohirl.envs.mimicgen.tasks",
    "cohirl.envs.metaworld.tasks",
)

# The paper's six MimicGen tasks (issue 5). Tasks not yet registered are skipped by `paper_suite()`.
PAPER_SUITE = ("square", "coffee", "mug_cleanup", "threading", "hammer_cleanup", "nut_assembly")


def _registry() -> dict[str, tuple[TaskSpec, Any]]:
    out: dict[str, tuple[TaskSpec, Any]] = {}
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # module not written yet
                continue
            raise
        for spec in module.SPECS:
            out[spec.name] = (spec, module)
    return out


def list_tasks() -> list[TaskSpec]:
    return [spec for spec, _ in _registry().values()]


def get_spec(name: str) -> TaskSpec:
    reg = _registry()
    if name not in reg:
        known = ", ".join(sorted(reg))
        raise CohirlError(f"unknown task {name!r}. Known tasks: {known}. (`cohirl tasks` lists them.)")
    return reg[name][0]


def make_task(name: str, cameras: CameraConfig | None = None, **kwargs: Any) -> Task:
    spec = get_spec(name)
    return _registry()[name][1].make(spec, cameras, **kwargs)


def make_expert(task: Task) -> Expert:
    return _registry()[task.spec.name][1].make_expert(task)


def paper_suite() -> list[str]:
    reg = _registry()
    return [name for name in PAPER_SUITE if name in reg]


__all__ = [
    "ENV_STATE_KEY",
    "STATE_KEY",
    "CameraConfig",
    "Expert",
    "Obs",
    "Task",
    "TaskSpec",
    "get_spec",
    "list_tasks",
    "make_expert",
    "make_task",
    "paper_suite",
]
