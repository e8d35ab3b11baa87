"""Scripted experts: privileged controllers that read the simulator's true poses.

An expert returns its *clean* action for the current state. Noise for DART-style data collection is
added by the collector (``cohirl.demos.collect``), never inside the expert, so the recorded label is
always the expert's own action at the (possibly perturbed) state.
"""

from __future__ import annotations

import abc

import numpy as np

from cohirl.envs.base import Obs, Task


class Expert(abc.ABC):
    """Stateful (waypoint phase etc.) scripted controller for one task instance."""

    def __init__(self, task: Task) -> None:
        self.task = task

    @abc.abstractmethod
    def reset(self, seed: int) -> None:
        """Called right after ``task.reset(seed)``; clears internal phase."""

    @abc.abstractmethod
    def act(self, obs: Obs) -> np.ndarray:
        """Clean action in [-1, 1]^action_dim for the current simulator state."""
