"""The frozen base behaviour model behind a stepping interface (paper §"Over a frozen base").

A chunking base emits a chunk of actions from an observation history; deployed, it re-plans every
``k`` env steps (paper: k = 10) and the base action at step t is the chunk element for t:

    a_b(t) = chunk_{⌊t/k⌋}[t mod k],   chunk_j = π_b(o_{jk-n+1}, …, o_{jk})

``ChunkStepper`` does this online (and is a ``Policy`` so a bare base can be evaluated);
``base_actions_for_episode`` does the same offline on a demonstration's states, with the same
chunk phase, to give the residual learner its BC targets.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Sequence

import numpy as np

from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, Obs
from cohirl.errors import CohirlError

if TYPE_CHECKING:
    from cohirl.demos.dataset import DemoArrays

ObsHistory = dict[str, np.ndarray]  # key -> (B, n_obs_steps, *feature_shape)


class ChunkPolicy(abc.ABC):
    """A frozen policy that predicts a chunk of future actions from a short observation history.

    ``predict_chunk`` returns the actions executable from the *current* (last) observation onward:
    element 0 is the action for the current step. Policies whose raw prediction starts in the past
    (lerobot Diffusion Policy starts at the first observation of the window) slice that off.
    Sampling is driven by a generator seeded in ``reset(seed)``, so chunks are reproducible.
    """

    action_dim: int
    chunk_len: int
    n_obs_steps: int
    obs_keys: tuple[str, ...] = (STATE_KEY, ENV_STATE_KEY)
    # True when a chunk depends only on its own row's observations (no sampling state): then the
    # rows of several episodes may share one predict_chunk call (lockstep evaluation) and each gets
    # the chunk it would get alone, up to floating-point rounding of the batched arithmetic.
    row_deterministic: bool = False

    @abc.abstractmethod
    def reset(self, seed: int = 0) -> None:
        """Start of an episode: re-seed the sampling noise."""

    @abc.abstractmethod
    def predict_chunk(self, obs_history: ObsHistory) -> np.ndarray:
        """(B, chunk_len, action_dim) float32 actions from ``obs_history`` (B, n_obs_steps, dim)."""


def check_replan_every(policy: ChunkPolicy, replan_every: int) -> int:
    """k must be positive and no longer than the chunk available from the current observation."""
    k = int(replan_every)
    if not 1 <= k <= policy.chunk_len:
        raise CohirlError(
            f"replan_every={replan_every} is outside 1..{policy.chunk_len}: the base predicts "
            f"{policy.chunk_len} actions from the current observation onward. Lower replan_every "
            "(paper: 10) or use a base trained with a longer horizon."
        )
    return k


class ChunkStepper:
    """Steps a ``ChunkPolicy`` one env step at a time, re-planning exactly every ``replan_every`` steps.

    Implements ``BaseStepper`` (``base_action``) and ``Policy`` (``act``), so the same object feeds
    the residual learner and the evaluation harness. The observation history is padded at the start
    of an episode by repeating the first observation (as lerobot does).
    """

    def __init__(self, policy: ChunkPolicy, replan_every: int) -> None:
        self.policy = policy
        self.replan_every = check_replan_every(policy, replan_every)
        self.action_dim = int(policy.action_dim)
        self.n_replans = 0  # chunks predicted since construction (for tests and profiling)
        self._history: list[Obs] = []
        self._chunk: np.ndarray | None = None
        self._t = 0

    def reset(self, seed: int = 0) -> None:
        self.policy.reset(seed)
        self._history = []
        self._chunk = None
        self._t = 0

    @property
    def t(self) -> int:
        """Env steps taken since ``reset``."""
        return self._t

    def base_action(self, obs: Obs) -> np.ndarray:
        """a_b(t) for the current observation; re-plans when t is a multiple of ``replan_every``."""
        self._push(obs)
        phase = self._t % self.replan_every
        if phase == 0 or self._chunk is None:
            self._chunk = self._predict()
        self._t += 1
        return self._chunk[phase].copy()

    def act(self, obs: Obs, deterministic: bool = True) -> np.ndarray:
        """``Policy`` view: the frozen base acts alone (its sampling noise is seeded by ``reset``)."""
        return self.base_action(obs)

    def lockstep(self, n: int) -> "LockstepChunkStepper":
        """The same base for ``n`` episodes stepped together (``cohirl.eval.rollout`` lockstep)."""
        return LockstepChunkStepper(self.policy, self.replan_every, n)

    def _push(self, obs: Obs) -> None:
        self._history = _pushed(self._history, obs, self.policy)

    def _predict(self) -> np.ndarray:
        batch = {key: np.stack([f[key] for f in self._history])[None] for key in self.policy.obs_keys}
        chunk = np.asarray(self.policy.predict_chunk(batch), dtype=np.float32)
        _check_chunk(chunk, 1, self.policy)
        self.n_replans += 1
        return chunk[0]


def _pushed(history: list[Obs], obs: Obs, policy: ChunkPolicy) -> list[Obs]:
    """``history`` + this observation's frame, the last ``n_obs_steps`` (padded at an episode's start)."""
    missing = [key for key in policy.obs_keys if key not in obs]
    if missing:
        raise CohirlError(f"observation lacks {missing} that the base policy needs "
                          f"(it has {sorted(obs)}); enable the matching cameras/features in the task.")
    frame = {key: np.array(obs[key], copy=True) for key in policy.obs_keys}  # envs may reuse buffers
    n = policy.n_obs_steps
    return ([frame] * n if not history else history + [frame])[-n:]


class LockstepChunkStepper:
    """``ChunkStepper`` for ``n`` episodes started together and stepped together: every running
    episode is at the same step t, so all of them re-plan at once, in one ``predict_chunk`` call.

    Rows are the episodes' indices 0..n-1; ``base_actions(obs, rows)`` takes the observations of
    the rows still running (finished episodes drop out). Needs a ``row_deterministic`` policy (e.g.
    a diffusion base with zero initial noise, as every stage deploys it): a sampling base would
    draw its noise in batch order, so an episode would depend on which others share its batch.
    Also a lockstep ``Policy`` (``act``): the frozen base evaluated alone.
    """

    def __init__(self, policy: ChunkPolicy, replan_every: int, n: int) -> None:
        if not policy.row_deterministic:
            raise CohirlError(f"{type(policy).__name__} samples its chunks, so episodes stepped in lockstep would "
                              "depend on each other's batch: evaluate it with lockstep 1 (eval.lockstep), or deploy "
                              "it deterministically (zero initial noise).")
        if n < 1:
            raise CohirlError(f"lockstep needs at least 1 episode, got {n}.")
        self.policy, self.n = policy, int(n)
        self.replan_every = check_replan_every(policy, replan_every)
        self.action_dim = int(policy.action_dim)
        self.n_replans = 0
        self.reset([0] * self.n)

    def reset(self, seeds: Sequence[int]) -> None:
        if len(seeds) != self.n:
            raise CohirlError(f"lockstep stepper of {self.n} episodes reset with {len(seeds)} seeds.")
        self.policy.reset(int(seeds[0]))  # a row-deterministic policy ignores its sampling state
        self._histories: list[list[Obs]] = [[] for _ in range(self.n)]
        self._chunks = np.zeros((self.n, self.policy.chunk_len, self.action_dim), np.float32)
        self._t = 0

    @property
    def t(self) -> int:
        """Env steps taken since ``reset`` (the same for every running episode)."""
        return self._t

    def base_actions(self, obs: Sequence[Obs], rows: Sequence[int]) -> np.ndarray:
        """a_b(t) of each running row (len(rows), action_dim); ``obs[i]`` is row ``rows[i]``'s observation."""
        rows = list(rows)
        if len(obs) != len(rows) or not rows:
            raise CohirlError(f"lockstep step needs one observation per running row: {len(obs)} for rows {rows}.")
        for row, o in zip(rows, obs):
            self._histories[row] = _pushed(self._histories[row], o, self.policy)
        phase = self._t % self.replan_every
        if phase == 0:
            batch = {key: np.stack([np.stack([f[key] for f in self._histories[r]]) for r in rows])
                     for key in self.policy.obs_keys}
            chunk = np.asarray(self.policy.predict_chunk(batch), dtype=np.float32)
            _check_chunk(chunk, len(rows), self.policy)
            self._chunks[rows] = chunk
            self.n_replans += 1
        self._t += 1
        return self._chunks[rows, phase].copy()

    def act(self, obs: Sequence[Obs], rows: Sequence[int], deterministic: bool = True) -> np.ndarray:
        return self.base_actions(obs, rows)

    def episode_diagnostics(self, row: int) -> dict[str, float]:
        return {}


def _check_chunk(chunk: np.ndarray, batch: int, policy: ChunkPolicy) -> None:
    expected = (batch, policy.chunk_len, policy.action_dim)
    if chunk.shape != expected:
        raise CohirlError(f"{type(policy).__name__}.predict_chunk returned shape {chunk.shape}, "
                          f"expected {expected}: the base policy adapter is inconsistent.")


def history_windows(n_frames: int, at: Sequence[int] | np.ndarray, n_obs_steps: int) -> np.ndarray:
    """Frame indices (len(at), n_obs_steps) of the observation window ending at each ``at``,
    clamped at frame 0 (= padding by repeating the first observation)."""
    offsets = np.arange(1 - n_obs_steps, 1)
    return np.clip(np.asarray(at)[:, None] + offsets[None, :], 0, n_frames - 1)


def base_actions_for_episode(
    policy: ChunkPolicy,
    states: np.ndarray,
    env_states: np.ndarray,
    replan_every: int,
    seed: int = 0,
    extra_obs: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """a_b(t) for every frame of one demonstration episode, with the deployment chunk phase.

    Re-plans at t = 0, k, 2k, … from the demo's own observation history (the same windows the
    stepper would see if the env visited these states) and returns (T, action_dim) float32. All
    re-plans of the episode go through the policy in one batch; adapters draw per-row noise in
    order, so the result equals stepping a ``ChunkStepper`` reset with ``seed`` over the states.
    ``extra_obs`` holds further per-frame observation arrays (e.g. camera images) keyed like the task.
    """
    k = check_replan_every(policy, replan_every)
    frames = {STATE_KEY: np.asarray(states), ENV_STATE_KEY: np.asarray(env_states), **(extra_obs or {})}
    n_frames = len(frames[STATE_KEY])
    if any(len(v) != n_frames for v in frames.values()) or n_frames == 0:
        raise CohirlError(f"episode arrays have lengths {[len(v) for v in frames.values()]}; "
                          "they must all have the same non-zero number of frames.")
    missing = [key for key in policy.obs_keys if key not in frames]
    if missing:
        raise CohirlError(f"the base needs per-frame {missing} for the demonstration; pass them in extra_obs.")
    replans = np.arange(0, n_frames, k)
    windows = history_windows(n_frames, replans, policy.n_obs_steps)
    policy.reset(seed)
    batch = {key: frames[key][windows] for key in policy.obs_keys}
    chunks = np.asarray(policy.predict_chunk(batch), dtype=np.float32)
    _check_chunk(chunks, len(replans), policy)
    return chunks[:, :k].reshape(-1, policy.action_dim)[:n_frames].copy()


def base_actions_for_demos(policy: ChunkPolicy, demos: DemoArrays, replan_every: int, seed: int = 0) -> np.ndarray:
    """``base_actions_for_episode`` over every episode of ``demos``, concatenated in frame order
    (N, action_dim). Episode i uses seed ``seed + i``."""
    out = [
        base_actions_for_episode(policy, demos.state[sl], demos.env_state[sl], replan_every, seed + i)
        for i, sl in enumerate(demos.episode_slices())
    ]
    return np.concatenate(out, axis=0)
