"""The finetuning loop: step-0 = BC policy, zero residual = base, no drift on the base's own demos,
the sparse baseline's actor phase, kill-and-resume identity, errors.

Uses a real task (metaworld pick_place, fast) with real expert demonstrations and a small
deterministic chunking "base" (so the test needs no diffusion training).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cohirl.csil.learner import Learner
from cohirl.methods import build_method
from cohirl.csil.pretrain import build_learner
from cohirl.demos.collect import collect_demos
from cohirl.demos.dataset import DemoArrays, load_demo_arrays, write_dataset
from cohirl.envs import ENV_STATE_KEY, STATE_KEY, get_spec, make_task
from cohirl.errors import CohirlError
from cohirl.eval.rollout import evaluate
from cohirl.io import read_dvclive
from cohirl.policies.base import ChunkPolicy, ChunkStepper
from cohirl.stages import EvalConfig
from cohirl.training.agent import ComposedPolicy, PolicyInputs, save_actor_snapshot, snapshot_factory
from cohirl.training.loop import FinetuneConfig, Finetuner, demo_episodes
from cohirl.csil.replay import demo_buffer

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
                     learner={"policy_hidden": [32, 32], "critic_hidden": [32, 32], "hetstat_features": 32},
                     per_method={"sparse_residual": {"learner": {"critic_only_updates": 30}}})
EVAL = EvalConfig(n_episodes=2, seed=7, workers=1)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> DemoArrays:
    episodes, _ = collect_demos(TASK, 2, seed=0, progress=False)
    root = write_dataset(episodes, tmp_path_factory.mktemp("demos") / TASK, get_spec(TASK))
    return load_demo_arrays(root)


def make_runner(method: str, out: Path, demos: DemoArrays, cfg: FinetuneConfig = CFG,
                env_process: bool = False) -> Finetuner:
    return Finetuner(TASK, method, 0, cfg, demos, LinearBaseFactory(), EVAL, out, progress=False,
                     env_process=env_process)


def _live_files(run_dir: Path) -> dict[str, bytes]:
    """Every file the run logged through dvclive, by path inside its ``live/`` folder."""
    live = run_dir / "live"
    return {str(p.relative_to(live)): p.read_bytes() for p in sorted(live.rglob("*")) if p.is_file()}


def _executed_actions(policy: object, seed: int, steps: int) -> np.ndarray:
    """Actions a policy executes over one capped episode of the task from ``seed``."""
    task = make_task(TASK)
    obs = task.reset(seed)
    policy.reset(seed)  # type: ignore[attr-defined]
    actions = []
    for _ in range(steps):
        action = policy.act(obs, deterministic=True)  # type: ignore[attr-defined]
        actions.append(action)
        obs, _, terminated, truncated, _ = task.step(action)
        if terminated or truncated:
            break
    return np.stack(actions)


def _independent_bc_learner(method: str, demos: DemoArrays, cfg: FinetuneConfig) -> Learner:
    """The BC-pretrained learner built from the public pieces, without the Finetuner."""
    learner_cfg, composition = build_method(method, cfg.learner_overrides(method), cfg.composition_overrides(method))
    base = LinearBaseFactory()()
    episodes = demo_episodes(demos, base, base.replan_every, cfg.see_base_action, cfg.see_chunk_phase)
    buffer = demo_buffer(episodes, composition, learner_cfg.n_step, learner_cfg.gamma)
    return build_learner(learner_cfg, composition, buffer, seed=0)[0]


@pytest.mark.parametrize("method", ["csil_ensemble", "csil_residual"])
def test_step0_evaluation_is_the_bc_policy(tmp_path: Path, demos: DemoArrays, method: str) -> None:
    runner = make_runner(method, tmp_path / "run", demos, CFG)
    runner.setup()
    independent = _independent_bc_learner(method, demos, CFG)
    for key, value in independent.actor.state_dict().items():
        torch.testing.assert_close(runner.learner.actor.state_dict()[key], value, rtol=0, atol=0)
    snap = save_actor_snapshot(independent, tmp_path / "bc.pt", runner.inputs)
    bc_rows = evaluate(snapshot_factory(LinearBaseFactory(), snap), TASK, CFG.eval_episodes, EVAL.seed,
                       progress=False, horizon=CFG.max_episode_steps)
    step0 = pd.DataFrame(runner.state.eval_episodes)
    assert (step0.env_steps == 0).all()
    for column in ("success", "length", "return", "init_seed"):
        np.testing.assert_array_equal(step0[column], bc_rows[column])


def test_zero_residual_baseline_executes_the_base_actions_step_by_step(tmp_path: Path, demos: DemoArrays) -> None:
    runner = make_runner("sparse_residual", tmp_path / "run", demos, CFG)
    runner.setup()
    snap = save_actor_snapshot(runner.learner, tmp_path / "step0.pt", runner.inputs)
    composed = snapshot_factory(LinearBaseFactory(), snap)()
    for seed in (3, 4):
        base_actions = _executed_actions(LinearBaseFactory()(), seed, 40)
        np.testing.assert_array_equal(_executed_actions(composed, seed, 40), base_actions)


def _base_generated_demos(n_episodes: int = 4, steps: int = 40) -> DemoArrays:
    """Demonstrations recorded from the frozen base itself (a_demo = a_b at every step)."""
    spec, base = get_spec(TASK), LinearBaseFactory()()
    columns: dict[str, list[np.ndarray]] = {"state": [], "env_state": [], "action": [], "episode_index": []}
    task = make_task(TASK)
    for episode in range(n_episodes):
        obs = task.reset(100 + episode)
        base.reset(episode)
        for _ in range(steps):
            action = base.act(obs)
            columns["state"].append(obs[STATE_KEY].copy())
            columns["env_state"].append(obs[ENV_STATE_KEY].copy())
            columns["action"].append(action)
            columns["episode_index"].append(np.array(episode))
            obs, *_ = task.step(action)
    n = n_episodes * steps
    arrays = {k: np.stack(v).astype(np.float32 if k != "episode_index" else np.int64) for k, v in columns.items()}
    return DemoArrays(task=TASK, repo_id="base", root=Path("."), fps=spec.fps,
                      frame_index=np.tile(np.arange(steps), n_episodes), reward=np.zeros(n, np.float32),
                      done=np.zeros(n, bool), success=np.zeros(n, bool),
                      episode_seeds=np.arange(n_episodes), **arrays)


@pytest.mark.parametrize("method", ["csil_ensemble", "csil_residual", "csil_ensemble_mean"])
def test_bc_on_the_bases_own_demos_keeps_the_executed_action_at_the_base(tmp_path: Path, method: str) -> None:
    """Composition + BC pretraining must not move the executed action where BC intends no change."""
    cfg = FinetuneConfig(**{**CFG.__dict__, "bc_steps": 400})
    learner = _independent_bc_learner(method, _base_generated_demos(), cfg)
    composed = ComposedPolicy(LinearBaseFactory()(), learner.actor, learner.composition,
                              PolicyInputs(cfg.see_base_action, cfg.see_chunk_phase, 10))
    executed, base = _executed_actions(composed, 100, 40), _executed_actions(LinearBaseFactory()(), 100, 40)
    tolerance = 0.02 if learner.composition.correction_scale is not None else 0.1
    assert np.abs(executed - base).max() < tolerance, (method, np.abs(executed - base).max())


def test_sparse_baseline_actor_updates_within_the_budget(tmp_path: Path, demos: DemoArrays) -> None:
    cfg = FinetuneConfig(**{**CFG.__dict__, "utd": 1,
                            "per_method": {"sparse_residual": {"learner": {"critic_only_updates": 50}}}})
    runner = make_runner("sparse_residual", tmp_path / "run", demos, cfg)
    assert runner.total_updates() == CFG.env_steps - CFG.warmup_steps
    runner.setup()
    before = {k: v.clone() for k, v in runner.learner.actor.state_dict().items()}
    runner.run()
    moved = any(not torch.equal(before[k], v) for k, v in runner.learner.actor.state_dict().items())
    assert runner.learner.num_updates == runner.total_updates() and moved


def test_critic_only_phase_longer_than_the_run_is_a_config_error(tmp_path: Path, demos: DemoArrays) -> None:
    # the method's default (ResFiT: 10k critic-only updates) against a 120-step budget
    with pytest.raises(CohirlError, match=r"critic_only_updates=10000 ≥ the run's \d+ learner updates"):
        make_runner("sparse_residual", tmp_path / "run", demos, FinetuneConfig(**{**CFG.__dict__, "per_method": {}}))


@pytest.mark.parametrize("method", ["csil_residual", "sparse_residual"])
def test_kill_and_resume_gives_identical_rows(tmp_path: Path, demos: DemoArrays, method: str) -> None:
    full = make_runner(method, tmp_path / "full", demos).run()
    make_runner(method, tmp_path / "killed", demos).run(stop_after_steps=50)  # "killed" after a checkpoint
    resumed = make_runner(method, tmp_path / "killed", demos)
    resumed_rows = resumed.run()
    assert resumed.state.env_steps == CFG.env_steps
    pd.testing.assert_frame_equal(full, resumed_rows)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / "episodes.csv"),
                                  pd.read_csv(tmp_path / "killed" / "episodes.csv"))
    assert _live_files(tmp_path / "full") == _live_files(tmp_path / "killed")
    assert list(full.env_steps) == [0, 60, 120]
    # the run's metrics through dvclive: eval/<column> per evaluation, train/<metric> per training episode
    live = tmp_path / "full" / "live"
    evals = read_dvclive(live, "eval")
    assert list(evals.step) == [0, 60, 120]
    np.testing.assert_array_equal(evals.success_rate, full.success_rate)
    train = read_dvclive(live, "train")
    assert train.step.is_monotonic_increasing and train.step.iloc[-1] == CFG.env_steps
    assert {"return", "success", "length", "episode", "q_mean", "critic_td"} <= set(train.columns)
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == CFG.env_steps and summary["eval"]["success_rate"] == full.success_rate.iloc[-1]
    assert not (tmp_path / "full" / "train_log.csv").exists()


@pytest.mark.parametrize("method", ["csil_ensemble", "sparse_residual"])
def test_an_env_worker_process_gives_the_rows_of_the_in_process_loop(tmp_path: Path, demos: DemoArrays,
                                                                     method: str) -> None:
    local = make_runner(method, tmp_path / "local", demos)
    local_rows = local.run()
    worker = make_runner(method, tmp_path / "worker", demos, env_process=True)
    pd.testing.assert_frame_equal(local_rows, worker.run())
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / "episodes.csv"),
                                  pd.read_csv(tmp_path / "worker" / "episodes.csv"))
    assert _live_files(tmp_path / "local") == _live_files(tmp_path / "worker")
    assert local.learner.num_updates == worker.learner.num_updates == local.total_updates() > 0
    for key, value in local.learner.actor.state_dict().items():
        assert torch.equal(value, worker.learner.actor.state_dict()[key]), key
    assert worker.env is None  # the worker was stopped with the run


@dataclass(frozen=True)
class BrokenBaseFactory:
    def __call__(self) -> ChunkStepper:
        raise FileNotFoundError("no base checkpoint in /nowhere")


def test_an_env_worker_that_fails_or_dies_is_reported(tmp_path: Path, demos: DemoArrays) -> None:
    from cohirl.training.env_worker import EnvProcess

    with pytest.raises(CohirlError, match=r"pick_place env worker failed: FileNotFoundError: no base checkpoint"):
        EnvProcess(TASK, BrokenBaseFactory(), 40)
    env = EnvProcess(TASK, LinearBaseFactory(), 40)
    env.reset(0, 0)
    env._process.kill()
    env._process.join()
    with pytest.raises(CohirlError, match=r"env worker process died.*resume from its last checkpoint"):
        env.step_async(np.zeros(get_spec(TASK).action_dim, dtype=np.float32))
        env.step_wait()
    env.close()


def test_resuming_from_a_checkpoint_that_carries_code_refuses_it_without_running_it(tmp_path: Path,
                                                                                  demos: DemoArrays) -> None:
    from test_security import plant

    make_runner("csil_residual", tmp_path / "run", demos).run(stop_after_steps=50)
    runner = make_runner("csil_residual", tmp_path / "run", demos)
    genuine = torch.load(runner.checkpoint_path, weights_only=True)
    plant(runner.checkpoint_path, tmp_path / "ran", **genuine)
    with pytest.raises(CohirlError, match=r"checkpoint.pt holds pickled Python objects.*refused"):
        make_runner("csil_residual", tmp_path / "run", demos).run()
    assert not (tmp_path / "ran").exists()


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


def test_official_preset_and_per_method_settings() -> None:
    official = FinetuneConfig(preset="official", warmup_steps=10).learner_overrides("csil_residual")
    assert official["bc_steps"] == 25_000 and official["critic_pretrain_steps"] == 5_000
    assert official["critic_hidden"] == (256, 256) and official["n_critics"] == 1 and official["warmup_steps"] == 10
    with pytest.raises(CohirlError, match=r"\['bc_steps'\].*preset 'official'"):
        FinetuneConfig(preset="official", bc_steps=500).learner_overrides()
    with pytest.raises(CohirlError, match="Unknown learner preset"):
        FinetuneConfig(preset="fastest").learner_overrides()
    cfg = FinetuneConfig(composition={"kappa": 0.2},
                         per_method={"sparse_residual": {"learner": {"utd": 1}, "composition": {"kappa": 0.1}}})
    assert cfg.learner_overrides("sparse_residual")["utd"] == 1 and "utd" not in cfg.learner_overrides("csil_residual")
    assert cfg.composition_overrides("sparse_residual") == {"kappa": 0.1}
    assert cfg.composition_overrides("csil_residual") == {"kappa": 0.2}
    with pytest.raises(CohirlError, match="unknown method 'csil_magic'"):
        FinetuneConfig(per_method={"csil_magic": {}})
    with pytest.raises(CohirlError, match=r"unknown keys \['lerner'\]"):
        FinetuneConfig(per_method={"sparse_residual": {"lerner": {}}})


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_every_profile_gives_the_sparse_baseline_an_actor_phase(profile: str) -> None:
    from cohirl.stages import stage_config
    from cohirl.training.loop import total_updates

    cfg = stage_config(FinetuneConfig, "finetune", None, profile)
    learner_cfg, _ = build_method("sparse_residual", cfg.learner_overrides("sparse_residual"),
                                  cfg.composition_overrides("sparse_residual"))
    total = total_updates(cfg, learner_cfg)
    assert 0 < learner_cfg.critic_only_updates < total, (profile, learner_cfg.critic_only_updates, total)


def test_discounted_returns_restart_at_episode_ends() -> None:
    from cohirl.csil.diagnostics import discounted_returns

    reward = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    end = np.array([False, False, True, False, True])
    np.testing.assert_allclose(discounted_returns(reward, end, 0.5), [1.75, 1.5, 1.0, 3.0, 2.0])


def test_an_under_pretrained_critic_is_flagged_and_a_settled_one_is_not(
    tmp_path: Path, demos: DemoArrays, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo value check: Q at the demo states vs their return under the learned reward.

    Two critic-pretraining steps leave Q near its initial ≈ 0 while the demos' returns under the
    learned reward are of order r·T: flagged. A critic set to the returns' level is settled.
    """
    from cohirl.csil.diagnostics import demo_value_check

    runner = make_runner("csil_residual", tmp_path / "under", demos,
                         CFG.__class__(**{**CFG.__dict__, "critic_pretrain_steps": 2, "env_steps": 60}))
    runner.run()
    pre = runner.state.pretrain_metrics
    assert pre["pretrain_critic_settled"] == 0.0
    assert abs(pre["pretrain_mc_demo"]) > 5.0 and abs(pre["pretrain_q_demo"]) < abs(pre["pretrain_mc_demo"]) / 4
    assert "the critic has not settled after 2 pretraining steps" in capsys.readouterr().out
    run_json = pd.read_json(tmp_path / "under" / "run.json", typ="series")
    assert run_json["pretrain"]["pretrain_critic_settled"] == 0.0
    evals = pd.read_csv(tmp_path / "under" / "evals.csv")
    assert {"q_demo", "mc_demo", "critic_rel_error", "critic_settled", "q_eval_init", "mc_return_eval"} <= set(evals.columns)
    assert np.isfinite(evals.q_demo).all() and np.isfinite(evals.mc_demo).all()
    # Evaluation episodes: the critic's Q(s0, a0) and the episode's return under the learned reward.
    episodes = pd.read_csv(tmp_path / "under" / "episodes.csv")
    assert np.isfinite(episodes.q_init).all() and np.isfinite(episodes.learned_return).all()
    np.testing.assert_allclose(evals.mc_return_eval, episodes.groupby("env_steps").learned_return.mean().to_numpy())

    # Shift the last layer's bias of every head by the gap: the mean value now matches the returns.
    learner = runner.learner
    assert learner is not None
    check = demo_value_check(learner, runner.demos)
    with torch.no_grad():
        learner.critic.net[-1].bias.add_(-check["critic_gap"])
    settled = demo_value_check(learner, runner.demos)
    assert settled["critic_settled"] == 1.0 and abs(settled["critic_gap"]) < 1e-3 * abs(settled["mc_demo"])


def test_value_probe_reports_the_critic_at_the_first_state_and_the_learned_return(
    tmp_path: Path, demos: DemoArrays
) -> None:
    from cohirl.eval.rollout import run_episode
    from cohirl.training.agent import ValueProbe

    runner = make_runner("csil_residual", tmp_path / "run", demos)
    runner.setup()
    assert runner.learner is not None
    policy = snapshot_factory(LinearBaseFactory(), save_actor_snapshot(runner.learner, tmp_path / "p.pt",
                                                                     runner.inputs, value_probe=True))()
    assert policy.probe is not None
    seen: list[tuple[torch.Tensor, ...]] = []
    observe = policy.probe.observe
    policy.probe.observe = lambda *args: (seen.append(args), observe(*args))[1]  # type: ignore[method-assign]
    row = run_episode(make_task(TASK), policy, init_seed=3, horizon=25)
    assert row["length"] == len(seen) == 25
    learner, gamma = policy.probe.learner, runner.learner_cfg.gamma
    expected = sum(gamma**t * float(learner.coherent_reward(x, u.clamp(-1 + 1e-6, 1 - 1e-6), b)[0].detach())
                   for t, (x, u, b, _) in enumerate(seen))
    x0, _, _, a0 = seen[0]
    assert row["learned_return"] == pytest.approx(expected, rel=1e-6)
    assert row["q_init"] == pytest.approx(float(runner.learner.critic(x0, a0).min(0).values[0].detach()), rel=1e-6)
    # Without the probe (sparse methods, or value_probe=False) the row has no extra columns.
    plain = snapshot_factory(LinearBaseFactory(), save_actor_snapshot(runner.learner, tmp_path / "q.pt", runner.inputs))()
    assert set(run_episode(make_task(TASK), plain, init_seed=3, horizon=5)) == {"init_seed", "success", "length", "return"}
    assert isinstance(policy.probe, ValueProbe)


def test_csil_methods_read_the_reward_over_a_fixed_horizon_and_the_sparse_baseline_terminates() -> None:
    """The stability fix (README "Stability over long budgets"): CSIL's un-shifted reward, bootstrapping
    through success; the non-positive reward with termination stays as the ablation it was measured as."""
    for method in ("csil_residual", "csil_ensemble", "csil_residual_no_refine"):
        cfg, _ = build_method(method)
        assert (cfg.reward_variant, cfg.ignore_termination) == ("positive", True), method
    old, _ = build_method("csil_residual_nonpositive")
    assert (old.reward_variant, old.ignore_termination, old.value_clip()) == ("nonpositive", False, 0.0)
    sparse, _ = build_method("sparse_residual")
    assert sparse.reward_source == "sparse" and not sparse.ignore_termination


def test_the_env_worker_is_used_only_where_the_stage_has_a_second_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from cohirl._runtime import env_worker_wanted

    monkeypatch.delenv("COHIRL_ENV_PROCESS", raising=False)
    monkeypatch.setenv("COHIRL_STAGE_CPUS", "1")  # cohirl repro, default --cpus-per-stage
    assert not env_worker_wanted()
    monkeypatch.setenv("COHIRL_STAGE_CPUS", "2")
    assert env_worker_wanted()
    monkeypatch.setenv("COHIRL_ENV_PROCESS", "0")
    assert not env_worker_wanted()
    monkeypatch.setenv("COHIRL_STAGE_CPUS", "1")
    monkeypatch.setenv("COHIRL_ENV_PROCESS", "1")
    assert env_worker_wanted()
    monkeypatch.setenv("COHIRL_ENV_PROCESS", "yes")
    with pytest.raises(CohirlError, match=r"COHIRL_ENV_PROCESS='yes': use 1 .* or 0"):
        env_worker_wanted()


def test_a_truncated_checkpoint_is_refused_on_resume_with_the_fix(tmp_path: Path, demos: DemoArrays) -> None:
    # A disk that filled up mid-write cannot leave this (writes go to a temporary file, then rename),
    # but a file cut short by other means must stop the run with one message, never restart silently.
    make_runner("csil_residual", tmp_path / "run", demos).run(stop_after_steps=50)
    path = make_runner("csil_residual", tmp_path / "run", demos).checkpoint_path
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CohirlError, match=r"training checkpoint .*checkpoint.pt is corrupt.*Delete it to restart"):
        make_runner("csil_residual", tmp_path / "run", demos).run()
    assert path.stat().st_size > 0  # refused, not replaced by a fresh run's
