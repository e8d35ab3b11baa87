"""Pure loss functions of CSIL over a frozen base (step numbers refer to /work/shared/paper.md).

Every function takes tensors, checks their shapes and returns a tensor (or ``(loss, metrics)``).
Critic values come as ``[n_heads, batch]``; per-sample quantities as ``[batch]``.
"""

from __future__ import annotations

import math

import torch

from cohirl.errors import CohirlError
from cohirl.csil.policy_heads import TanhNormal

Metrics = dict[str, float]


def _f(x: torch.Tensor) -> float:
    return float(x.detach())


def _check(name: str, x: torch.Tensor, shape: tuple[int | None, ...]) -> None:
    ok = x.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
    if not ok:
        raise CohirlError(f"{name} has shape {tuple(x.shape)}, expected {shape} (None = any).")


# ---------------------------------------------------------------- step 4: BC pretraining
def faithful_bc_loss(dist: TanhNormal, target: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """'Faithful' BC loss (step 4): MSE(tanh μ, target) + NLL of the target with μ stop-gradiented.

    ``dist`` should come from ``policy(obs, faithful=True)`` so the variance is fitted from
    stop-gradiented features (CSIL); MSE is averaged over dims, the NLL summed over dims.
    """
    _check("target", target, tuple(dist.mean.shape))
    mse = (dist.mode() - target).square().mean()
    nll = -dist.detach_mean().log_prob(target).mean()
    return mse + nll, {"bc_mse": _f(mse), "bc_nll": _f(nll)}


# ---------------------------------------------------------------- step 2: coherent reward
def uniform_log_prior(policy_action: torch.Tensor) -> torch.Tensor:
    """log p(a) = -d·log 2 for the uniform prior on [-1, 1]^d (CSIL default); [B, d] -> [B]."""
    _check("policy_action", policy_action, (None, None))
    batch, action_dim = policy_action.shape
    return policy_action.new_full((batch,), -action_dim * math.log(2.0))


def base_gaussian_log_prior(policy_action: torch.Tensor, center: torch.Tensor, std: float) -> torch.Tensor:
    """log p of a tanh-Gaussian prior centred on the base's equivalent output ``center``.

    Pre-tanh mean atanh(center), pre-tanh std ``std``: the density is normalised on (-1, 1)^d and,
    for the residual (center 0, std = HetStat's off-data std), equals the small policy's
    off-data limit, so the reward vanishes there (paper.md: "Prior").
    """
    _check("center", center, tuple(policy_action.shape))
    mean = torch.atanh(center.clamp(-1 + 1e-6, 1 - 1e-6))
    return TanhNormal(mean, torch.full_like(mean, std)).log_prob(policy_action)


def coherent_reward(
    log_q: torch.Tensor,
    log_p: torch.Tensor,
    alpha: float,
    action_dim: int,
    variant: str = "positive",
    r_max: float = -0.5 * math.log(1e-5) + math.log(2.0),
    offset: float | None = None,
) -> torch.Tensor:
    """r = α(log q(u|s) - log p(u|s)) (step 2); "nonpositive" subtracts ``offset``.

    The default offset is α·d·R_max: each action dimension's log-ratio is at most ≈ R_max, so this is
    the smallest shift that makes every reward ≤ 0 (paper.md's "subtract d·R_max" reads with α = 1;
    with α = 1/d, subtracting d·R_max would put every value near −d·R_max/(1−γ) ≈ −4500 for d = 7).
    """
    _check("log_q", log_q, (None,))
    _check("log_p", log_p, tuple(log_q.shape))
    reward = alpha * (log_q - log_p)
    if variant == "nonpositive":
        return reward - (alpha * action_dim * r_max if offset is None else offset)
    if variant != "positive":
        raise CohirlError(f"Unknown reward variant {variant!r}; use 'positive' or 'nonpositive'.")
    return reward


def reward_refinement_loss(
    demo_reward: torch.Tensor, agent_reward: torch.Tensor, clip_low: float = -5.0
) -> tuple[torch.Tensor, Metrics]:
    """Inverse-RL step (step 6): -E_demo[r] + E_agent[e^(-max(r, clip_low)) - 1 + r]."""
    _check("demo_reward", demo_reward, (None,))
    _check("agent_reward", agent_reward, (None,))
    demo_term = -demo_reward.mean()
    agent_term = (torch.exp(-agent_reward.clamp_min(clip_low)) - 1.0 + agent_reward).mean()
    loss = demo_term + agent_term
    return loss, {"reward_loss": _f(loss), "reward_demo": _f(demo_reward.mean()),
                  "reward_agent": _f(agent_reward.mean())}


# ---------------------------------------------------------------- KL (actor regulariser)
def gaussian_kl(mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor) -> torch.Tensor:
    """Exact KL(N(mean_p, std_p²) ‖ N(mean_q, std_q²)) of diagonal Gaussians, summed over the last dim.

    Applied to pre-tanh parameters this is also the exact KL between the TanhNormals (tanh is a
    bijection): the paper's "exact Gaussian KL" addition.
    """
    for name, x in (("std_p", std_p), ("mean_q", mean_q), ("std_q", std_q)):
        _check(name, x, tuple(mean_p.shape))
    var_ratio = (std_p / std_q).square()
    mahalanobis = ((mean_p - mean_q) / std_q).square()
    return 0.5 * (var_ratio + mahalanobis - 1.0 - var_ratio.log()).sum(-1)


# ---------------------------------------------------------------- critic
def reduce_heads(q: torch.Tensor, how: str, heads: torch.Tensor | None = None) -> torch.Tensor:
    """[n, B] -> [B]: min over all heads, mean, or min over the subset ``heads`` (REDQ/ResFiT)."""
    _check("q", q, (None, None))
    if heads is not None:
        q = q.index_select(0, heads)
    if how == "min":
        return q.min(0).values
    if how == "mean":
        return q.mean(0)
    raise CohirlError(f"Unknown critic reduction {how!r}; use 'min' or 'mean'.")


def soft_td_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    done: torch.Tensor,
    next_q: torch.Tensor,
    next_regulariser: torch.Tensor,
    value_clip: float,
) -> torch.Tensor:
    """y = r + γ^n(1 - done)·min(Q̄(s', a') - reg(s'), R_max/(1 - γ)) (step 6), no gradient.

    ``next_q`` is the already-reduced target value [B]; ``next_regulariser`` is β(log π - log q₀)
    (or its exact KL, or α·log π, or 0) at s'. ``discount`` holds γ^k for a k-step return.
    """
    for name, x in (("discount", discount), ("done", done), ("next_q", next_q), ("next_regulariser", next_regulariser)):
        _check(name, x, tuple(reward.shape))
    next_value = torch.clamp(next_q - next_regulariser, max=value_clip)
    return (reward + discount * (1.0 - done) * next_value).detach()


def action_gradient_penalty(action_grads: torch.Tensor) -> torch.Tensor:
    """√E‖∇ₐQ(s, a)‖²: ``action_grads`` [n, B, d], squared norm over d, mean over heads and batch."""
    _check("action_grads", action_grads, (None, None, None))
    return torch.sqrt(action_grads.square().sum(-1).mean() + 1e-12)


def critic_loss(
    q: torch.Tensor, target: torch.Tensor, action_grads: torch.Tensor | None = None, penalty_weight: float = 0.0
) -> tuple[torch.Tensor, Metrics]:
    """TD / SARSA regression of every head on ``target`` plus the action-gradient penalty (steps 5, 6).

    ``q`` [n, B], ``target`` [B]; ``action_grads`` [n, B_demo, d] at demonstrated actions.
    """
    _check("q", q, (None, None))
    _check("target", target, (q.shape[1],))
    td = (q - target.unsqueeze(0)).square().mean()
    metrics = {"critic_td": _f(td), "q_mean": _f(q.mean()), "target_mean": _f(target.mean())}
    if action_grads is None or penalty_weight == 0.0:
        return td, metrics
    penalty = action_gradient_penalty(action_grads)
    metrics["critic_grad_penalty"] = _f(penalty)
    return td + penalty_weight * penalty, metrics


# ---------------------------------------------------------------- actor (step 6)
def actor_loss(q: torch.Tensor, regulariser: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """E[reg(s) - Q(s, a)], a ~ π; reg = β(log π - log q₀) (CSIL), α·log π (SAC) or 0."""
    _check("q", q, (None,))
    _check("regulariser", regulariser, tuple(q.shape))
    loss = (regulariser - q).mean()
    return loss, {"actor_loss": _f(loss), "actor_q": _f(q.mean()), "actor_reg": _f(regulariser.mean())}
