"""A task's scripted expert packaged as a picklable ``Policy`` for the evaluation harness.

Experts read privileged simulator state, which a ``Policy`` never sees. ``ExpertPolicy`` therefore
keeps its own *shadow* copy of the task: it resets it with the episode's seed and steps it with the
actions it emits, so the shadow follows the evaluated task exactly (our tasks are deterministic given
the seed and the actions). Each call checks that the observation it receives matches the shadow's
and raises a CohirlError if they ever diverge.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cohirl.envs import ENV_STATE_KEY, STATE_KEY, Expert, Obs, Task, get_spec, make_expert, make_task
from cohirl.errors import CohirlError
from cohirl.policies.interfaces import PolicyFactory


@dataclass
class ExpertPolicy:
    """``ExpertPolicy("pick_place")``: the scripted expert of a registered task, as a Policy."""

    task_name: str
    _shadow: Task | None = field(default=None, init=False, repr=False, compare=False)
    _expert: Expert | None = field(default=None, init=False, repr=False, compare=False)
    _shadow_obs: Obs | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def action_dim(self) -> int:
        return get_spec(self.task_name).action_dim

    def reset(self, seed: int) -> None:
        if self._shadow is None:
            self._shadow = make_task(self.task_name)
            self._expert = make_expert(self._shadow)
        assert self._expert is not None
        self._shadow_obs = self._shadow.reset(seed)
        self._expert.reset(seed)

    def act(self, obs: Obs, deterministic: bool = True) -> np.ndarray:
        if self._shadow is None or self._expert is None or self._shadow_obs is None:
            raise CohirlError("ExpertPolicy.act() before reset(seed); call reset with the episode's seed first.")
        self._check_in_sync(obs)
        action = self._expert.act(self._shadow_obs)
        self._shadow_obs, *_ = self._shadow.step(action)
        return action

    def _check_in_sync(self, obs: Obs) -> None:
        assert self._shadow_obs is not None
        for key in (STATE_KEY, ENV_STATE_KEY):
            if not np.array_equal(obs[key], self._shadow_obs[key]):
                raise CohirlError(
                    f"ExpertPolicy({self.task_name!r}): the evaluated task's {key} differs from the "
                    f"expert's shadow task at step {self._shadow.t if self._shadow else '?'}. Reset the "
                    "policy with the same seed as the task and evaluate the same, unmodified task."
                )

    def __getstate__(self) -> dict[str, Any]:
        return {"task_name": self.task_name}  # simulators do not pickle; rebuilt on reset

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.task_name = state["task_name"]
        self._shadow = self._expert = self._shadow_obs = None


def expert_policy_factory(task_name: str) -> PolicyFactory:
    """A picklable zero-argument factory for ``evaluate``: ``ExpertPolicy(task_name)``."""
    get_spec(task_name)  # fail early on an unknown name
    return functools.partial(ExpertPolicy, task_name)
