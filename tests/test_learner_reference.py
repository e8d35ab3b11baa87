"""The learner's update against a plain reference written from paper.md's equations (step 6).

The reference below re-derives every term by hand — coherent reward, soft TD target with the exact
Gaussian KL, √E‖∇ₐQ‖² penalty at the demo actions, reward refinement, KL-regularised actor, Polyak —
using the learner's networks only as functions (their ``mean``/``std`` outputs and Q values) and its
generator's draws in the same order. Any faster rewrite of ``Learner.update`` must keep these equal:
losses, gradients and parameters after several updates, for csil_residual, csil_ensemble and
sparse_residual, with the gradient penalty on. The last test checks that the comparison can fail:
dropping one term of the fast path (the penalty, the KL) is caught.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from cohirl.csil import Learner, build_learner
from cohirl.csil import losses as fast_losses
from cohirl.csil.replay import DemoEpisode, ReplayBuffer, demo_buffer
from cohirl.methods import build_method

torch.set_num_threads(1)
OBS, ACT = 6, 3
TINY = {"policy_hidden": (16, 16), "critic_hidden": (16, 16), "hetstat_features": 16, "bc_steps": 30,
        "critic_pretrain_steps": 10, "bc_batch_size": 16, "critic_pretrain_batch_size": 16,
        "critic_only_updates": 0, "grad_penalty_weight": 1.0}
RTOL, ATOL = 1e-4, 1e-6  # float32 sums taken in another order by the two implementations
KEYS = ("obs", "policy_action", "base_action", "action", "reward", "discount", "terminated", "next_obs",
        "next_base_action")


def _setup(method: str) -> tuple[Learner, list[tuple[dict, dict]]]:
    cfg, composition = build_method(method, TINY)
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(4):
        obs = rng.normal(size=(13, OBS)).astype(np.float32)
        base = np.tanh(0.5 * obs[:, :ACT]).astype(np.float32)
        act = np.clip(base[:12] + 0.1 * rng.normal(size=(12, ACT)), -1, 1).astype(np.float32)
        episodes.append(DemoEpisode(obs, base, act, success=i % 2 == 0))
    demos = demo_buffer(episodes, composition, cfg.n_step, cfg.gamma)
    learner, _ = build_learner(cfg, composition, demos, seed=3)
    replay = ReplayBuffer(300, OBS, ACT, cfg.n_step, cfg.gamma)
    for t in range(120):
        obs = rng.normal(size=OBS).astype(np.float32)
        a_b = np.tanh(0.5 * obs[:ACT]).astype(np.float32)
        action, u = learner.act(obs, a_b)
        replay.add(obs=obs, policy_action=u, base_action=a_b, action=action, reward=float(t % 30 == 29),
                   terminated=t % 30 == 29, truncated=False, next_obs=rng.normal(size=OBS).astype(np.float32),
                   next_base_action=a_b)
    batch_rng = np.random.default_rng(5)
    return learner, [(demos.sample(16, batch_rng), replay.sample(16, batch_rng)) for _ in range(4)]


# ---------------------------------------------------------------- the reference, from the equations
def _log_tanh_normal(action: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log density of a = tanh(x), x ~ N(mean, std²), summed over dims (stable log(1 - tanh²x))."""
    x = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    log_gauss = -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
    log_jacobian = 2 * (math.log(2) - x - torch.nn.functional.softplus(-2 * x))
    return (log_gauss - log_jacobian).sum(-1)


def _kl(mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor) -> torch.Tensor:
    """KL(N_p ‖ N_q) of diagonal Gaussians, the textbook form."""
    return (torch.log(std_q / std_p) + (std_p**2 + (mean_p - mean_q) ** 2) / (2 * std_q**2) - 0.5).sum(-1)


def _compose(learner: Learner, a_b: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    c = learner.composition
    scale = c.kappa if c.mode == "residual" else 0.5 * c.ensemble_spread  # the "centred" ensemble
    assert c.mode == "residual" or c.ensemble_weighting == "centred"
    return (a_b + scale * small).clamp(-1, 1)


def _reward(learner: Learner, b: dict[str, torch.Tensor], log_q: torch.Tensor) -> torch.Tensor:
    """α(log q_φ(u|s) − log p(u|s)): uniform prior −d·log 2, or the tanh-Gaussian at δ = 0."""
    cfg, d = learner.cfg, ACT
    alpha = cfg.alpha or 1.0 / d
    if cfg.prior == "uniform":
        log_p = torch.full_like(log_q, -d * math.log(2))
    else:  # residual and centred ensemble: the base's equivalent output is δ = 0
        zero = torch.zeros_like(b["policy_action"])
        log_p = _log_tanh_normal(b["policy_action"], zero, torch.full_like(zero, cfg.prior_std))
    return alpha * (log_q - log_p)


def reference_update(learner: Learner, demo: dict, replay: dict) -> dict[str, float]:
    cfg = learner.cfg
    assert cfg.max_grad_norm is None and cfg.kl_estimator == "exact"
    assert cfg.reward_source == "sparse" or (cfg.reward_source == "coherent" and cfg.reward_variant == "positive")
    b = {k: torch.cat([torch.as_tensor(demo[k]), torch.as_tensor(replay[k])]).float() for k in KEYS}
    n_demo, gen = len(demo["obs"]), learner.update_generator
    out: dict[str, float] = {}

    coherent = cfg.reward_source == "coherent"
    if coherent:
        q_phi = learner.reward_policy(b["obs"])
        log_q = _log_tanh_normal(b["policy_action"], q_phi.mean, q_phi.std)
        reward = _reward(learner, b, log_q).detach()
    else:
        reward = b["reward"]

    with torch.no_grad():  # y = r + γ^k (1 − done) min(Q̄(s', a') − β·KL(π‖q₀)(s'), R_max/(1 − γ))
        nxt = learner.actor(b["next_obs"])
        u_next = nxt.mean + nxt.std * torch.randn(nxt.mean.shape, generator=gen)
        q_next = learner.critic_target(b["next_obs"], _compose(learner, b["next_base_action"], torch.tanh(u_next)))
        if cfg.critic_target_heads is not None:
            q_next = q_next[torch.randperm(cfg.n_critics, generator=gen)[: cfg.critic_target_heads]]
        q_next = q_next.min(0).values
        reg_next = torch.zeros_like(q_next)
        if cfg.actor_reg == "kl_to_bc":
            ref = learner.reference(b["next_obs"])
            reg_next = cfg.beta * _kl(nxt.mean, nxt.std, ref.mean, ref.std)
        done = torch.zeros_like(reward) if cfg.ignore_termination else b["terminated"]
        y = reward + b["discount"] * (1 - done) * torch.clamp(q_next - reg_next, max=cfg.r_max / (1 - cfg.gamma))

    actions = b["action"].expand(cfg.n_critics, -1, -1).clone().requires_grad_(True)
    q = learner.critic(b["obs"], actions)
    grads = torch.autograd.grad(q[:, :n_demo].sum(), actions, create_graph=True)[0][:, :n_demo]
    td = ((q - y) ** 2).mean()
    penalty = torch.sqrt((grads**2).sum(-1).mean() + 1e-12)
    critic_loss = td + cfg.grad_penalty_weight * penalty
    learner.critic_opt.zero_grad()
    critic_loss.backward()
    learner.critic_opt.step()
    with torch.no_grad():
        for target, source in zip(learner.critic_target.parameters(), learner.critic.parameters()):
            target.copy_((1 - cfg.tau) * target + cfg.tau * source)
    out.update(critic_td=float(td.detach()), critic_grad_penalty=float(penalty.detach()))

    if coherent and cfg.refine_reward:  # −E_demo[r] + E_agent[e^(−max(r, −5)) − 1 + r]
        r = _reward(learner, b, log_q)
        agent = r[n_demo:]
        reward_loss = -r[:n_demo].mean() + (torch.exp(-torch.clamp(agent, min=cfg.refine_clip)) - 1 + agent).mean()
        learner.reward_opt.zero_grad()
        reward_loss.backward()
        learner.reward_opt.step()
        out["reward_loss"] = float(reward_loss.detach())

    if learner.num_updates >= cfg.critic_only_updates:  # E[β·KL(π‖q₀)(s) − Q(s, a)], a ~ π
        pi = learner.actor(b["obs"])
        u = pi.mean + pi.std * torch.randn(pi.mean.shape, generator=gen)
        q_pi = learner.critic(b["obs"], _compose(learner, b["base_action"], torch.tanh(u)))
        q_pi = q_pi.min(0).values if cfg.actor_q_reduction == "min" else q_pi.mean(0)
        reg = torch.zeros_like(q_pi)
        if cfg.actor_reg == "kl_to_bc":
            with torch.no_grad():
                ref = learner.reference(b["obs"])
            reg = cfg.beta * _kl(pi.mean, pi.std, ref.mean, ref.std)
        actor_loss = (reg - q_pi).mean()
        params = list(learner.actor.parameters())
        learner.actor_opt.zero_grad()
        for p, g in zip(params, torch.autograd.grad(actor_loss, params, allow_unused=True)):
            p.grad = g
        learner.actor_opt.step()
        out["actor_loss"] = float(actor_loss.detach())
    learner.num_updates += 1
    return out


# ---------------------------------------------------------------- comparisons
def _named(learner: Learner) -> dict[str, torch.nn.Module]:
    modules = {"actor": learner.actor, "critic": learner.critic, "critic_target": learner.critic_target}
    if learner.reward_policy is not None:
        modules["reward_policy"] = learner.reward_policy
    return modules


def _compare(method: str, n_updates: int = 4) -> None:
    fast, batches = _setup(method)
    ref = copy.deepcopy(fast)  # the same networks, optimiser states and generators
    for i, (demo, replay) in enumerate(batches[:n_updates]):
        fast_metrics = fast.update(demo, replay)
        ref_metrics = reference_update(ref, demo, replay)
        for key, value in ref_metrics.items():
            assert fast_metrics[key] == pytest.approx(value, rel=RTOL, abs=ATOL), (method, i, key)
        for name, module in _named(fast).items():
            for (pname, p_fast), p_ref in zip(module.named_parameters(), _named(ref)[name].parameters()):
                torch.testing.assert_close(p_fast, p_ref, rtol=RTOL, atol=ATOL, msg=f"{method} {name}.{pname}")
                if name != "critic_target" and p_ref.grad is not None:
                    torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=RTOL, atol=ATOL,
                                               msg=f"{method} grad {name}.{pname}")


@pytest.mark.parametrize("method", ["csil_residual", "csil_ensemble", "sparse_residual"])
def test_fast_update_equals_the_reference(method: str) -> None:
    _compare(method)


@pytest.mark.parametrize("mutation", ["penalty", "kl"])
def test_the_comparison_catches_a_dropped_term(mutation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if mutation == "penalty":
        monkeypatch.setattr(fast_losses, "action_gradient_penalty", lambda g: g.sum() * 0.0)
    else:
        monkeypatch.setattr(fast_losses, "gaussian_kl", lambda mp, sp, mq, sq: torch.zeros(mp.shape[:-1]))
    with pytest.raises(AssertionError):
        _compare("csil_residual")
