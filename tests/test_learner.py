"""The shared learner: CSIL and sparse-baseline updates, determinism, exact resume, NaN guard, (h)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from cohirl.csil import Learner, LearnerConfig, bc_pretrain, build_learner
from cohirl.methods import METHODS, build_method
from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition
from cohirl.csil.replay import DemoEpisode, ReplayBuffer, demo_buffer

torch.set_num_threads(1)
OBS, ACT = 5, 2
TINY = {"policy_hidden": (16, 16), "critic_hidden": (16, 16), "hetstat_features": 16, "bc_steps": 20,
        "critic_pretrain_steps": 10, "bc_batch_size": 16, "critic_pretrain_batch_size": 16}


def _episodes(n: int, T: int = 12, seed: int = 0) -> list[DemoEpisode]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        obs = rng.normal(size=(T + 1, OBS)).astype(np.float32)
        base = np.tanh(0.5 * obs[:, :ACT]).astype(np.float32)
        act = np.clip(base[:T] + 0.05 * rng.normal(size=(T, ACT)), -1, 1).astype(np.float32)
        out.append(DemoEpisode(obs, base, act, success=i % 2 == 0))
    return out


def _setup(method: str, seed: int = 0, **overrides: object) -> tuple[Learner, ReplayBuffer, ReplayBuffer]:
    cfg, composition = build_method(method, {**TINY, **overrides})
    demos = demo_buffer(_episodes(4), composition, cfg.n_step, cfg.gamma)
    learner, _ = build_learner(cfg, composition, demos, seed)
    replay = ReplayBuffer(200, OBS, ACT, cfg.n_step, cfg.gamma)
    rng = np.random.default_rng(1)
    for t in range(60):
        obs = rng.normal(size=OBS).astype(np.float32)
        a_b = np.tanh(0.5 * obs[:ACT]).astype(np.float32)
        action, u = learner.act(obs, a_b)
        replay.add(obs=obs, policy_action=u, base_action=a_b, action=action, reward=float(t % 20 == 19),
                   terminated=t % 20 == 19, truncated=False, next_obs=rng.normal(size=OBS).astype(np.float32),
                   next_base_action=a_b)
    return learner, demos, replay


def _batches(demos: ReplayBuffer, replay: ReplayBuffer, k: int, seed: int = 5) -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(seed)
    return [(demos.sample(16, rng), replay.sample(16, rng)) for _ in range(k)]


def _params(learner: Learner) -> torch.Tensor:
    modules = [learner.actor, learner.critic, learner.critic_target]
    if learner.reward_policy is not None:
        modules.append(learner.reward_policy)
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


@pytest.mark.parametrize("method", ["csil_ensemble", "csil_residual", "sparse_residual", "csil_residual_mlp_head",
                                    "csil_residual_base_prior", "csil_ensemble_precision", "csil_residual_sample_kl"])
def test_one_update_returns_finite_metrics(method: str) -> None:
    learner, demos, replay = _setup(method, critic_only_updates=0)
    before = _params(learner)
    metrics = learner.update(*_batches(demos, replay, 1)[0])
    assert metrics and all(np.isfinite(v) for v in metrics.values())
    assert {"critic_td", "actor_loss"} <= set(metrics)
    assert ("reward_loss" in metrics) == learner.cfg.refine_reward
    assert not torch.equal(before, _params(learner))


def test_same_seed_gives_identical_parameters() -> None:
    results = []
    for _ in range(2):
        learner, demos, replay = _setup("csil_residual", seed=3)
        for demo_batch, replay_batch in _batches(demos, replay, 3):
            learner.update(demo_batch, replay_batch)
        results.append(_params(learner))
    assert torch.equal(results[0], results[1])
    other, demos, replay = _setup("csil_residual", seed=4)
    assert not torch.equal(results[0][: len(_params(other))], _params(other))


@pytest.mark.parametrize("method", ["csil_ensemble", "sparse_residual"])
def test_state_dict_round_trip_continues_identically(method: str) -> None:
    learner, demos, replay = _setup(method, critic_only_updates=1)
    batches = _batches(demos, replay, 4)
    for b in batches[:2]:
        learner.update(*b)
    buffer = io.BytesIO()
    torch.save(learner.state_dict(), buffer)
    for b in batches[2:]:
        learner.update(*b)
    obs = np.zeros((3, OBS), np.float32)
    reference_action = learner.act(obs, np.zeros((3, ACT), np.float32))
    buffer.seek(0)
    resumed = Learner.from_state_dict(torch.load(buffer, weights_only=False))
    for b in batches[2:]:
        resumed.update(*b)
    assert torch.equal(_params(learner), _params(resumed))
    assert resumed.num_updates == learner.num_updates == 4
    resumed_action = resumed.act(obs, np.zeros((3, ACT), np.float32))
    assert all(np.array_equal(x, y) for x, y in zip(reference_action, resumed_action))


def test_nan_loss_raises_naming_the_loss_and_update() -> None:
    learner, demos, replay = _setup("csil_residual")
    demo_batch, replay_batch = _batches(demos, replay, 1)[0]
    learner.update(demo_batch, replay_batch)
    bad = copy.deepcopy(replay_batch)
    bad["next_obs"][0, 0] = np.nan
    with pytest.raises(CohirlError, match=r"critic loss .* update 1"):
        learner.update(demo_batch, bad)


def test_critic_only_updates_leave_the_actor_untouched() -> None:
    learner, demos, replay = _setup("sparse_residual", critic_only_updates=2, actor_lr=1e-2)
    actor_before = [p.detach().clone() for p in learner.actor.parameters()]
    for b in _batches(demos, replay, 2):
        metrics = learner.update(*b)
        assert "actor_loss" not in metrics
    assert all(torch.equal(a, p) for a, p in zip(actor_before, learner.actor.parameters()))
    assert "actor_loss" in learner.update(*_batches(demos, replay, 1)[0])


def test_sparse_baseline_starts_as_the_base_and_csil_starts_as_bc() -> None:
    learner, _, _ = _setup("sparse_residual")
    a_b = np.random.default_rng(0).uniform(-1, 1, (4, ACT)).astype(np.float32)
    action, u = learner.act(np.ones((4, OBS), np.float32), a_b, deterministic=True)
    assert np.array_equal(action, a_b) and np.all(u == 0)
    assert learner.reward_policy is None and learner.reference is None
    csil, _, _ = _setup("csil_ensemble")
    obs = torch.randn(8, OBS)
    for copy_ in (csil.reward_policy, csil.reference):
        assert torch.equal(copy_(obs).mean, csil.actor(obs).mean)
    assert all(not p.requires_grad for p in csil.reference.parameters())


def test_h_bad_input() -> None:
    with pytest.raises(CohirlError, match="known methods.*csil_ensemble"):
        build_method("csil_ensembel")
    with pytest.raises(CohirlError, match="kappa"):
        build_method("csil_residual", composition_overrides={"kappa": 0.0})
    with pytest.raises(CohirlError, match="kappa"):
        Composition(mode="residual", kappa=-1.0)
    with pytest.raises(CohirlError, match="empty"):
        demo_buffer([], Composition())
    cfg, _ = build_method("csil_residual", TINY)
    from cohirl.csil.networks import make_policy

    with pytest.raises(CohirlError, match="empty"):
        bc_pretrain(make_policy(cfg, OBS, ACT), np.zeros((0, OBS), np.float32), np.zeros((0, ACT), np.float32), cfg, 0)
    with pytest.raises(CohirlError, match="BC-pretrained"):
        Learner(cfg, Composition(), OBS, ACT, seed=0)
    with pytest.raises(CohirlError, match="reward_source"):
        LearnerConfig(reward_source="dense")
    with pytest.raises(CohirlError, match="gamma"):
        LearnerConfig(gamma=1.0)
    with pytest.raises(CohirlError, match="n_step"):
        LearnerConfig(n_step=3)  # a learned reward needs one-step transitions
    with pytest.raises(CohirlError, match="Unknown LearnerConfig field"):
        LearnerConfig().with_(betta=0.1)
    assert {"csil_ensemble", "csil_residual", "sparse_residual", "csil_residual_no_critic_pretrain",
            "csil_residual_no_refine", "csil_residual_mlp_head", "csil_residual_base_prior"} <= set(METHODS)


def test_acme_critic_style_layers_and_init() -> None:
    from cohirl.csil.networks import CriticEnsemble

    torch.manual_seed(0)
    critic = CriticEnsemble(5, 2, n_heads=3, hidden=(16, 16), style="acme")
    kinds = [type(m).__name__ for m in critic.net]
    assert kinds == ["EnsembleLinear", "EnsembleLayerNorm", "Tanh", "EnsembleLinear", "ELU", "EnsembleLinear"]
    first = critic.net[0].weight[0]  # [in 7, out 16]: orthonormal rows
    torch.testing.assert_close(first @ first.T, torch.eye(7), atol=1e-5, rtol=0)
    assert torch.count_nonzero(critic.net[0].bias) == 0
    assert critic(torch.randn(4, 5), torch.rand(4, 2)).shape == (3, 4)
    default = [type(m).__name__ for m in CriticEnsemble(5, 2, hidden=(16, 16)).net]
    assert default == ["EnsembleLinear", "EnsembleLayerNorm", "ReLU"] * 2 + ["EnsembleLinear"]
    with pytest.raises(CohirlError, match="critic style"):
        CriticEnsemble(5, 2, style="deep")
