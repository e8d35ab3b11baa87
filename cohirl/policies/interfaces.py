"""Policy interfaces shared by evaluation, the base adapters and the finetuned compositions."""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np

from cohirl.envs.base import Obs


@runtime_checkable
class Policy(Protocol):
    """Anything that acts in a task step by step (experts, bases, composed policies)."""

    action_dim: int

    def reset(self, seed: int) -> None:
        """Start of an episode; ``seed`` drives any sampling so rollouts are reproducible."""

    def act(self, obs: Obs, deterministic: bool = True) -> np.ndarray:
        """Action in [-1, 1]^action_dim. ``deterministic`` = mode actions (evaluation default)."""


# A picklable zero-argument callable that builds a Policy inside an evaluation worker process.
PolicyFactory = Callable[[], Policy]


@runtime_checkable
class BaseStepper(Protocol):
    """A frozen chunking base policy stepped one env step at a time.

    It re-plans a chunk every ``replan_every`` env steps (the paper: k = 10) and exposes the base
    action a_b(t) for every step, which the residual/ensemble learner needs at each step.
    """

    action_dim: int
    replan_every: int

    def reset(self, seed: int) -> None:
        """Start of an episode: clears observation history and the current chunk."""

    def base_action(self, obs: Obs) -> np.ndarray:
        """a_b(t) for the current observation; advances the stepper by one env step."""
