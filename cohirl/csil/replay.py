"""Numpy ring-buffer replay with n-step returns, and the demonstration buffer built from demos.

Each stored step holds (``FIELDS``): ``obs`` (the small policy's input, raw), ``policy_action``
(the small policy's output u in (-1, 1)^d: δ for the residual, â for the ensemble),
``base_action`` a_b, ``action`` (executed), ``reward`` (the env's sparse reward), ``terminated``,
``truncated`` (episode ended without termination), ``next_obs``, ``next_base_action``.

``sample`` returns k-step transitions (k ≤ n_step): ``reward`` = Σ_{i<k} γ^i r_{t+i},
``discount`` = γ^k, ``terminated`` = 1 if the episode terminated inside the window, and
``next_obs``/``next_base_action`` (and any extra fields) of step t+k-1. A window stops at an
episode end (terminated or truncated) and at the newest stored step, so every sample is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition

FIELDS = ("obs", "policy_action", "base_action", "action", "reward", "terminated", "truncated",
          "next_obs", "next_base_action")
DEMO_EXTRAS = ("next_action", "next_policy_action")  # SARSA fields of the demonstration buffer
_OBS_FIELDS = ("obs", "next_obs")
_SCALAR_FIELDS = ("reward", "terminated", "truncated")


class ReplayBuffer:
    """Fixed-capacity FIFO of single env steps; n-step returns are formed at sampling time."""

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        action_dim: int,
        n_step: int = 1,
        gamma: float = 0.99,
        extras: Sequence[str] = (),
    ) -> None:
        if capacity <= 0 or n_step <= 0 or not 0 < gamma <= 1:
            raise CohirlError(f"ReplayBuffer needs capacity > 0, n_step > 0, gamma in (0, 1]; got {capacity}, {n_step}, {gamma}.")
        self.capacity, self.obs_dim, self.action_dim = capacity, obs_dim, action_dim
        self.n_step, self.gamma = n_step, gamma
        self.extras = tuple(extras)
        self._data = {name: np.zeros(self._shape(name), dtype=np.float32) for name in (*FIELDS, *self.extras)}
        self._ptr = 0
        self._size = 0

    def _shape(self, name: str) -> tuple[int, ...]:
        if name in _OBS_FIELDS:
            return (self.capacity, self.obs_dim)
        if name in _SCALAR_FIELDS:
            return (self.capacity,)
        return (self.capacity, self.action_dim)

    def __len__(self) -> int:
        return self._size

    def add(self, **step: np.ndarray | float | bool) -> None:
        """Store one env step; keyword names are ``FIELDS`` plus this buffer's extras."""
        expected = set(FIELDS) | set(self.extras)
        if set(step) != expected:
            raise CohirlError(
                f"ReplayBuffer.add: missing {sorted(expected - set(step))}, unknown {sorted(set(step) - expected)}."
            )
        for name, value in step.items():
            arr = np.asarray(value, dtype=np.float32)
            if arr.shape != self._data[name].shape[1:]:
                raise CohirlError(f"ReplayBuffer.add: {name} has shape {arr.shape}, expected {self._data[name].shape[1:]}.")
            if not np.all(np.isfinite(arr)):
                raise CohirlError(f"ReplayBuffer.add: {name} contains NaN/inf.")
            self._data[name][self._ptr] = arr
        self._ptr = (self._ptr + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def field(self, name: str) -> np.ndarray:
        """The stored column ``name`` in physical order (a view; only filled rows)."""
        return self._data[name][: self._size]

    def set_field(self, name: str, values: np.ndarray) -> None:
        """Overwrite the filled rows of column ``name`` (physical order, as ``field`` returns them)."""
        arr = np.asarray(values, dtype=np.float32)
        if arr.shape != self.field(name).shape or not np.all(np.isfinite(arr)):
            raise CohirlError(f"ReplayBuffer.set_field: {name} needs finite values of shape {self.field(name).shape}.")
        self._data[name][: self._size] = arr

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch_size`` uniformly drawn k-step transitions (see the module docstring)."""
        if self._size == 0:
            raise CohirlError("ReplayBuffer.sample: the buffer is empty; add transitions (or demos) first.")
        return self.gather(rng.integers(0, self._size, size=batch_size))

    def gather(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """k-step transitions starting at the physical rows ``index``."""
        d = self._data
        newest = (self._ptr - 1) % self.capacity
        ret = np.zeros(len(index), dtype=np.float32)
        disc = np.ones(len(index), dtype=np.float32)
        term = np.zeros(len(index), dtype=bool)
        last = index.copy()
        active = np.ones(len(index), dtype=bool)
        for k in range(self.n_step):
            cur = (index + k) % self.capacity
            ret += np.where(active, disc * d["reward"][cur], 0.0).astype(np.float32)
            last = np.where(active, cur, last)
            ended = d["terminated"][cur] > 0.5
            term |= active & ended
            disc = np.where(active, disc * self.gamma, disc).astype(np.float32)
            active &= ~(ended | (d["truncated"][cur] > 0.5) | (cur == newest))
        out = {name: d[name][index] for name in ("obs", "policy_action", "base_action", "action")}
        out.update({name: d[name][last] for name in ("next_obs", "next_base_action", *self.extras)})
        out.update(reward=ret, discount=disc, terminated=term.astype(np.float32))
        return out

    def state_dict(self) -> dict[str, object]:
        """Everything needed to resume exactly (the caller saves its sampling rng separately)."""
        return {"data": {k: v[: self._size].copy() for k, v in self._data.items()}, "ptr": self._ptr,
                "size": self._size, "capacity": self.capacity, "n_step": self.n_step, "gamma": self.gamma,
                "extras": list(self.extras)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        if state["capacity"] != self.capacity or list(state["extras"]) != list(self.extras):  # type: ignore[arg-type]
            raise CohirlError("ReplayBuffer.load_state_dict: capacity/extras differ from the saved buffer.")
        self.n_step, self.gamma = int(state["n_step"]), float(state["gamma"])  # type: ignore[arg-type]
        self._ptr, self._size = int(state["ptr"]), int(state["size"])  # type: ignore[arg-type]
        for name, values in state["data"].items():  # type: ignore[union-attr]
            self._data[name][: self._size] = values


@dataclass(frozen=True)
class DemoEpisode:
    """One demonstration: ``obs`` [T+1, D] (incl. the final observation), ``base_action`` [T+1, d]
    (a_b at every observation, same chunk phase as at deployment; the last row may repeat),
    ``action`` [T, d] demo actions, ``success`` (the episode ended in success)."""

    obs: np.ndarray
    base_action: np.ndarray
    action: np.ndarray
    success: bool = True

    def check(self, index: int) -> None:
        T = len(self.action)
        if T == 0:
            raise CohirlError(f"Demo episode {index} has no steps.")
        if self.obs.shape[0] != T + 1 or self.base_action.shape[0] != T + 1:
            raise CohirlError(
                f"Demo episode {index}: obs {self.obs.shape} and base_action {self.base_action.shape} need T+1 = "
                f"{T + 1} rows (one more than the {T} actions: the final observation)."
            )


def demo_buffer(
    episodes: Sequence[DemoEpisode], composition: Composition, n_step: int = 1, gamma: float = 0.99
) -> ReplayBuffer:
    """Replay of demonstration transitions (paper.md steps 4–6 and the sparse baseline).

    ``policy_action`` = composition.bc_targets(a_demo, a_b) and ``action`` = the executed action of
    that output, composition.demo_executed(a_b, target) — the action the critic scores, so that
    reward (on u) and critic (on the executed action) agree on what the BC policy does (coherence;
    it equals a_demo wherever the composition can reach it). SARSA extras ``next_action`` and
    ``next_policy_action`` (the last step repeats its own action; it only matters if the demo
    was truncated); sparse reward 1 and ``terminated`` at the last step of successful demos.
    """
    if len(episodes) == 0:
        raise CohirlError("The demonstration set is empty: generate or load demos before building the buffer.")
    for i, ep in enumerate(episodes):
        ep.check(i)
    obs_dim, action_dim = episodes[0].obs.shape[1], episodes[0].action.shape[1]
    total = sum(len(ep.action) for ep in episodes)
    buffer = ReplayBuffer(total, obs_dim, action_dim, n_step, gamma, extras=DEMO_EXTRAS)
    for ep in episodes:
        _add_demo_episode(buffer, ep, composition)
    return buffer


def _add_demo_episode(buffer: ReplayBuffer, ep: DemoEpisode, composition: Composition) -> None:
    T = len(ep.action)
    base = ep.base_action[:T].astype(np.float32)
    targets = composition.bc_targets(ep.action.astype(np.float32), base)
    executed = np.asarray(composition.demo_executed(base, targets), dtype=np.float32)
    for t in range(T):
        nxt = min(t + 1, T - 1)
        last = t == T - 1
        buffer.add(
            obs=ep.obs[t], policy_action=targets[t], base_action=ep.base_action[t], action=executed[t],
            reward=float(last and ep.success), terminated=last and ep.success, truncated=last and not ep.success,
            next_obs=ep.obs[t + 1], next_base_action=ep.base_action[t + 1],
            next_action=executed[nxt], next_policy_action=targets[nxt],
        )
