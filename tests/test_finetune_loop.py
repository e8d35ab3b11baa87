"""The finetuning loop: step-0 = BC policy, zero residual = base, kill-and-resume identity, errors.

Uses a real task (metaworld pick_place, fast) with real expert demonstrations and a small
deterministic chunking "base" (so the test needs no diffusion training).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohirl.csil.learner import Learner
from cohirl.demos.collect import collect_demos
from cohirl.demos.dataset import DemoArrays, load_demo_arrays, write_dataset
from cohirl.envs import ENV_STATE_KEY, STATE_KEY, get_spec
from cohirl.errors import CohirlError
from cohirl.eval.rollout import evaluate
from cohirl.policies.base import ChunkPolicy, ChunkStepper
from cohirl.stages import EvalConfig
from cohirl.training.agent import save_actor_snapshot, snapshot_factory
from cohirl.training.loop import FinetuneConfig, Finetuner

TASK = "pick_place"


class LinearChunkPolicy(ChunkPolicy):
    """Deterministic chunks: a fixed small linear map of the current observation, held for the chunk."""

    def __init__(self, state_dim: int, env_dim: int, action_dim: int) -> None:
        rng = np.random.default_rng(0)
        self.w = rng.normal(scale=0.3, size=(state_dim + env_dim, action_dim))
        self.action_dim, self.chunk_len, self.n_obs_steps = action_dim, 12, 2

    def reset(self, seed: int = 0) -> None:
        pass

    def predict_chunk(self, obs_history: dict[str, np.ndarray]) -> np.ndarray:
        x = np.concatenate([obs_history[STATE_KEY][:, -1], obs_history[ENV_STATE_KEY][:, -1]], axis=-1)
        a = np.tanh(x @ self.w)[:, None, :]
        return np.repeat(a, self.chunk_len, axis=1).astype(np.float32)


@dataclass(frozen=True)
class LinearBaseFactory:
    replan_every: int = 10

    def __call__(self) -> ChunkStepper:
        spec = get_spec(TASK)
        return ChunkStepper(LinearChunkPolicy(spec.state_dim, spec.env_state_dim, spec.action_dim),
                            self.replan_every)


CFG = FinetuneConfig(env_steps=120, eval_every=60, eval_episodes=2, checkpoint_every=40, bc_steps=40,
                     critic_pretrain_steps=20, warmup_steps=30, batch_size=16, max_episode_steps=40,
                     learner={"policy_hidden": [32, 32], "critic_hidden": [32, 32], "hetstat_features": 32})
EVAL = EvalConfig(n_episodes=2, seed=7, workers=1)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> DemoArrays:
    episodes, _ = collect_demos(TASK, 2, seed=0, progress=False)
    root = write_dataset(episodes, tmp_path_factory.mktemp("demos") / TASK, get_spec(TASK))
    return load_demo_arrays(root)


def make_runner(method: str, out: Path, demos: DemoArrays, cfg: FinetuneConfig = CFG) -> Finetuner:
    return Finetuner(TASK, method, 0, cfg, demos, LinearBaseFactory(), EVAL, out, progress=False)


def test_step0_evaluation_is_the_bc_policy(tmp_path: Path, demos: DemoArrays) -> None:
    runner = make_runner("csil_ensemble", tmp_path / "run", demos, CFG)
    runner.setup()
    snap = save_actor_snapshot(runner.learner, tmp_path / "bc.pt", CFG.see_base_action)
    bc_rows = evaluate(snapshot_factory(LinearBaseFactory(), snap), TASK, CFG.eval_episodes, EVAL.seed,
                       progress=False, horizon=CFG.max_episode_steps)
    step0 = pd.DataFrame(runner.state.eval_episodes)
    assert (step0.env_steps == 0).all()
    np.testing.assert_array_equal(step0.success, bc_rows.success)
    np.testing.assert_array_equal(step0.length, bc_rows.length)
    np.testing.assert_array_equal(step0.init_seed, bc_rows.init_seed)


def test_zero_residual_baseline_starts_exactly_at_the_base(tmp_path: Path, demos: DemoArrays) -> None:
    runner = make_runner("sparse_residual", tmp_path / "run", demos, CFG)
    runner.setup()
    base_rows = evaluate(LinearBaseFactory(), TASK, CFG.eval_episodes, EVAL.seed, progress=False,
                         horizon=CFG.max_episode_steps)
    step0 = pd.DataFrame(runner.state.eval_episodes)
    np.testing.assert_array_equal(step0["return"], base_rows["return"])
    np.testing.assert_array_equal(step0.length, base_rows.length)


@pytest.mark.parametrize("method", ["csil_residual", "sparse_residual"])
def test_kill_and_resume_gives_identical_rows(tmp_path: Path, demos: DemoArrays, method: str) -> None:
    full = make_runner(method, tmp_path / "full", demos).run()
    make_runner(method, tmp_path / "killed", demos).run(stop_after_steps=50)  # "killed" after a checkpoint
    resumed = make_runner(method, tmp_path / "killed", demos)
    resumed_rows = resumed.run()
    assert resumed.state.env_steps == CFG.env_steps
    pd.testing.assert_frame_equal(full, resumed_rows)
    for name in ("episodes.csv", "train_log.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / name), pd.read_csv(tmp_path / "killed" / name))
    assert list(full.env_steps) == [0, 60, 120]


def test_divergence_reports_step_and_keeps_last_checkpoint(tmp_path: Path, demos: DemoArrays,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    runner = make_runner("csil_residual", tmp_path / "run", demos)

    def diverge(*args: object, **kwargs: object) -> dict[str, float]:
        raise CohirlError("loss 'critic' is NaN at update 0")

    monkeypatch.setattr(Learner, "update", diverge)
    with pytest.raises(CohirlError, match=r"diverged at env step \d+.*critic"):
        runner.run()
    assert runner.checkpoint_path.exists()


def test_changed_settings_do_not_resume_a_stale_checkpoint(tmp_path: Path, demos: DemoArrays) -> None:
    make_runner("csil_residual", tmp_path / "run", demos).run(stop_after_steps=50)
    other = FinetuneConfig(**{**CFG.__dict__, "env_steps": 80, "eval_every": 40})
    runner = make_runner("csil_residual", tmp_path / "run", demos, other)
    rows = runner.run()
    assert list(rows.env_steps) == [0, 40, 80]
    assert (tmp_path / "run" / "checkpoints" / "checkpoint.stale").exists()


def test_bad_inputs(tmp_path: Path, demos: DemoArrays) -> None:
    with pytest.raises(CohirlError, match="Unknown method"):
        make_runner("csil_magic", tmp_path / "x", demos)
    with pytest.raises(CohirlError, match="positive"):
        FinetuneConfig(env_steps=0)
    with pytest.raises(CohirlError, match="kappa|κ"):
        Finetuner(TASK, "csil_residual", 0, FinetuneConfig(composition={"kappa": 0.0}), demos,
                  LinearBaseFactory(), EVAL, tmp_path / "y", progress=False)
