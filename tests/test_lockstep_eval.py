"""Lockstep evaluation: several episodes stepped together with one batched base call per re-plan.

The episodes must be the ones lockstep 1 runs: same initial states, same ends, same rows (exactly
for a base whose rows do not share arithmetic), and the rows must not depend on the worker count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from cohirl.csil import build_learner
from cohirl.csil.replay import DemoEpisode, demo_buffer
from cohirl.envs import ENV_STATE_KEY, STATE_KEY, get_spec
from cohirl.errors import CohirlError
from cohirl.eval import evaluate, run_episode
from cohirl.eval.rollout import lockstep_policy, run_lockstep
from cohirl.methods import build_method
from cohirl.policies.base import ChunkPolicy, ChunkStepper
from cohirl.training.agent import ComposedPolicy, PolicyInputs, ValueProbe

TASK = "pick_place"


class RowwisePolicy(ChunkPolicy):
    """Chunks from a fixed map of each row's own window, computed element-wise (no shared matmul),
    so a row's chunk is bit-identical whatever batch it is predicted in."""

    row_deterministic = True

    def __init__(self, state_dim: int, env_dim: int, action_dim: int, chunk_len: int = 8) -> None:
        rng = np.random.default_rng(0)
        self.w = rng.normal(scale=0.3, size=(state_dim + env_dim, action_dim)).astype(np.float32)
        self.action_dim, self.chunk_len, self.n_obs_steps = action_dim, chunk_len, 2

    def reset(self, seed: int = 0) -> None:
        pass

    def predict_chunk(self, obs_history: dict[str, np.ndarray]) -> np.ndarray:
        x = np.concatenate([obs_history[STATE_KEY][:, -1], obs_history[ENV_STATE_KEY][:, 0]], axis=-1)
        a = np.tanh((x[:, :, None] * self.w[None]).sum(axis=1))  # (B, action_dim)
        drift = np.linspace(0.0, 0.2, self.chunk_len, dtype=np.float32)[None, :, None]
        return np.clip(a[:, None, :] + drift, -1, 1).astype(np.float32)


@dataclass(frozen=True)
class RowwiseBaseFactory:
    replan_every: int = 5

    def __call__(self) -> ChunkStepper:
        spec = get_spec(TASK)
        return ChunkStepper(RowwisePolicy(spec.state_dim, spec.env_state_dim, spec.action_dim), self.replan_every)


def test_lockstep_rows_equal_one_at_a_time_and_do_not_depend_on_workers() -> None:
    run = dict(task=TASK, n_episodes=5, seed=7, method="base", progress=False, horizon=23)
    alone = evaluate(RowwiseBaseFactory(), workers=1, **run)
    together = evaluate(RowwiseBaseFactory(), workers=1, lockstep=3, **run)  # groups of 3 and 2
    pooled = evaluate(RowwiseBaseFactory(), workers=2, lockstep=3, **run)
    assert (alone.length == 23).all()
    assert alone.equals(together) and together.equals(pooled)


def test_tasks_built_once_serve_later_evaluations_with_the_same_rows() -> None:
    """In-process evaluations keep their built tasks (a Meta-World build costs ~0.65 s); a reused task
    gives the rows a fresh one gives, in another order of episodes too."""
    from cohirl.eval import rollout

    rollout._BUILT_TASKS.clear()
    run = dict(task=TASK, seed=11, method="base", progress=False, horizon=17)
    first = evaluate(RowwiseBaseFactory(), n_episodes=4, lockstep=4, **run)
    built = list(rollout.built_tasks(TASK, None, 4))
    again = evaluate(RowwiseBaseFactory(), n_episodes=4, lockstep=4, **run)
    assert rollout.built_tasks(TASK, None, 4) == built  # the same objects, not rebuilt
    alone = evaluate(RowwiseBaseFactory(), n_episodes=4, **run)  # reuses task 0 for every episode
    rollout._BUILT_TASKS.clear()
    fresh = evaluate(RowwiseBaseFactory(), n_episodes=4, lockstep=2, **run)
    assert first.equals(again) and first.equals(alone) and first.equals(fresh)


class EndingTask:
    """Stands in for a Task: episode ``seed`` succeeds at step seed % 7 + 1 (ends differ per row)."""

    def __init__(self) -> None:
        self.spec = get_spec(TASK)
        self.steps: list[np.ndarray] = []

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        self.seed, self.t = seed, 0
        return self._obs()

    def _obs(self) -> dict[str, np.ndarray]:
        value = np.float32(self.seed + 0.1 * self.t)
        return {STATE_KEY: np.full(self.spec.state_dim, value, np.float32),
                ENV_STATE_KEY: np.full(self.spec.env_state_dim, -value, np.float32)}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.steps.append(np.array(action))
        self.t += 1
        success = self.t == self.seed % 7 + 1
        return self._obs(), float(success), success, False, {"success": success}


def test_episodes_that_end_early_drop_out_and_keep_their_own_rows() -> None:
    seeds = [3, 12, 5, 7]  # ends at steps 4, 6, 6, 1
    alone_tasks = [EndingTask() for _ in seeds]
    alone = [run_episode(task, RowwiseBaseFactory()(), seed) for task, seed in zip(alone_tasks, seeds)]
    tasks = [EndingTask() for _ in seeds]
    together = run_lockstep(tasks, lockstep_policy(RowwiseBaseFactory()(), len(seeds)), seeds)
    assert together == alone and [row["length"] for row in together] == [4, 6, 6, 1]
    for a, b in zip(alone_tasks, tasks):  # the very same actions, step by step
        np.testing.assert_array_equal(np.stack(a.steps), np.stack(b.steps))


def _composed(method: str) -> ComposedPolicy:
    spec = get_spec(TASK)
    d = spec.action_dim
    inputs = PolicyInputs(replan_every=5)
    obs_dim = spec.state_dim + spec.env_state_dim + d + 1
    tiny = {"policy_hidden": (16, 16), "critic_hidden": (16, 16), "hetstat_features": 16, "bc_steps": 20,
            "critic_pretrain_steps": 5, "bc_batch_size": 16, "critic_pretrain_batch_size": 16}
    cfg, composition = build_method(method, tiny)
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(3):
        obs = rng.normal(size=(13, obs_dim)).astype(np.float32)
        base = np.tanh(obs[:, :d]).astype(np.float32)
        episodes.append(DemoEpisode(obs, base, np.clip(base[:12] + 0.05, -1, 1).astype(np.float32), success=True))
    learner, _ = build_learner(cfg, composition, demo_buffer(episodes, composition, cfg.n_step, cfg.gamma), seed=0)
    return ComposedPolicy(RowwiseBaseFactory()(), learner.actor, composition, inputs, probe=ValueProbe(learner))


@pytest.mark.parametrize("method", ["csil_residual", "csil_ensemble"])
def test_composed_policy_in_lockstep_acts_and_probes_as_it_does_alone(method: str) -> None:
    torch.manual_seed(0)
    policy = _composed(method)
    seeds = [3, 12, 5]
    alone_tasks = [EndingTask() for _ in seeds]
    alone = [run_episode(task, policy, seed) for task, seed in zip(alone_tasks, seeds)]
    tasks = [EndingTask() for _ in seeds]
    together = run_lockstep(tasks, lockstep_policy(policy, len(seeds)), seeds)
    for a, b in zip(alone, together):
        assert (a["success"], a["length"]) == (b["success"], b["length"])
        assert b["q_init"] == pytest.approx(a["q_init"], rel=1e-5, abs=1e-6)
        assert b["learned_return"] == pytest.approx(a["learned_return"], rel=1e-5, abs=1e-6)
    for a, b in zip(alone_tasks, tasks):  # batched forwards: equal up to float rounding
        np.testing.assert_allclose(np.stack(a.steps), np.stack(b.steps), atol=1e-6)


def test_lockstep_refuses_what_it_cannot_batch() -> None:
    class Sampling(RowwisePolicy):
        row_deterministic = False

    spec = get_spec(TASK)
    stepper = ChunkStepper(Sampling(spec.state_dim, spec.env_state_dim, spec.action_dim), 5)
    with pytest.raises(CohirlError, match="samples its chunks.*lockstep 1"):
        lockstep_policy(stepper, 2)

    class NoLockstep:
        action_dim = spec.action_dim

        def reset(self, seed: int) -> None:
            pass

        def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
            return np.zeros(self.action_dim)

    with pytest.raises(CohirlError, match="cannot step several episodes together"):
        lockstep_policy(NoLockstep(), 2)  # type: ignore[arg-type]
    with pytest.raises(CohirlError, match="lockstep .* must be >= 1"):
        evaluate(RowwiseBaseFactory(), TASK, n_episodes=2, seed=0, progress=False, lockstep=0)


def test_a_finetuning_run_evaluates_in_lockstep_with_the_same_episodes(tmp_path: Any) -> None:
    import pandas as pd

    from cohirl.demos.collect import collect_demos
    from cohirl.demos.dataset import load_demo_arrays, write_dataset
    from cohirl.stages import EvalConfig
    from cohirl.training.loop import FinetuneConfig, Finetuner

    episodes, _ = collect_demos(TASK, 2, seed=0, progress=False)
    demos = load_demo_arrays(write_dataset(episodes, tmp_path / "demos", get_spec(TASK)))
    cfg = FinetuneConfig(env_steps=60, eval_every=60, eval_episodes=3, checkpoint_every=60, bc_steps=20,
                         critic_pretrain_steps=5, warmup_steps=30, batch_size=16, max_episode_steps=30,
                         learner={"policy_hidden": [16, 16], "critic_hidden": [16, 16], "hetstat_features": 16})
    rows = {}
    for lockstep in (1, 3):
        runner = Finetuner(TASK, "csil_residual", 0, cfg, demos, RowwiseBaseFactory(),
                           EvalConfig(3, 7, 1, lockstep), tmp_path / f"run{lockstep}", progress=False)
        runner.run()
        rows[lockstep] = pd.DataFrame(runner.state.eval_episodes)
    one, three = rows[1], rows[3]
    for column in ("env_steps", "init_seed", "success", "length", "return"):
        np.testing.assert_array_equal(one[column], three[column])
    np.testing.assert_allclose(one.q_init, three.q_init, rtol=1e-5)
    np.testing.assert_allclose(one.learned_return, three.learned_return, rtol=1e-5)
