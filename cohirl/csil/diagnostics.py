"""Reward and critic diagnostics (notebook 03): is the coherent reward shaped as the theory says?

- ``reward_vs_perturbation``: r(s, u_demo + ε) for growing ε — should peak at the demonstrated action.
- ``reward_far_from_data``: max_u |r(s + shift, u)| for growing state shifts — HetStat reverts to ≈ 0
  (the prior), an ordinary MLP head does not.
- ``action_gradient_norms``: ‖∇ₐQ‖ at demonstrated vs random actions after critic pretraining.
- ``demo_value_check``: the critic at the demo states vs the demos' Monte-Carlo return under the
  current reward — has critic pretraining reached its fixed point (paper.md step 5)?
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from cohirl.csil import losses
from cohirl.csil.learner import Learner, to_tensors
from cohirl.csil.replay import FIELDS, ReplayBuffer

Batch = dict[str, np.ndarray]


def _policy_reward(learner: Learner, obs: torch.Tensor, u: torch.Tensor, a_b: torch.Tensor) -> torch.Tensor:
    """α(log q_φ(u|s) − log p(u|s)) without the non-positive offset, so "no information" reads 0."""
    return learner.coherent_reward(obs, u, a_b, variant="positive")


@torch.no_grad()
def reward_vs_perturbation(learner: Learner, batch: Batch, scales: Sequence[float], seed: int = 0) -> pd.DataFrame:
    """Mean learned reward at demo actions perturbed by N(0, scale²) in the small policy's space."""
    b = to_tensors(batch, learner.cfg.gamma)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for scale in scales:
        noise = torch.randn(b["policy_action"].shape, generator=gen) * scale
        u = (b["policy_action"] + noise).clamp(-0.999, 0.999)
        r = _policy_reward(learner, b["obs"], u, b["base_action"])
        rows.append({"perturbation": scale, "mean_reward": float(r.mean()), "std_reward": float(r.std())})
    return pd.DataFrame(rows)


@torch.no_grad()
def reward_far_from_data(learner: Learner, batch: Batch, shifts: Sequence[float], n_actions: int = 16,
                         seed: int = 0) -> pd.DataFrame:
    """Median over states of max over random actions of |r| at states moved ``shift`` stds away."""
    b = to_tensors(batch, learner.cfg.gamma)
    norm = learner.actor.obs_normalizer
    direction = torch.randn(b["obs"].shape[1], generator=torch.Generator().manual_seed(seed))
    direction = direction / direction.norm()
    rows = []
    for shift in shifts:
        obs = b["obs"] + shift * norm.std * direction
        worst = torch.zeros(len(obs))
        for k in range(n_actions):
            u = torch.rand(b["policy_action"].shape, generator=torch.Generator().manual_seed(seed + k)) * 1.98 - 0.99
            worst = torch.maximum(worst, _policy_reward(learner, obs, u, b["base_action"]).abs())
        rows.append({"shift_in_stds": shift, "max_abs_reward": float(worst.median())})
    return pd.DataFrame(rows)


def action_gradient_norms(learner: Learner, batch: Batch, seed: int = 0) -> dict[str, float]:
    """Median ‖∇ₐ min_i Q_i(s, a)‖ at the demonstrated executed actions vs uniformly random actions."""
    b = to_tensors(batch, learner.cfg.gamma)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, actions in (("demo", b["action"]), ("random", torch.rand(b["action"].shape, generator=gen) * 2 - 1)):
        a = actions.clone().requires_grad_(True)
        q = learner.critic(b["obs"], a).min(dim=0).values.sum()  # heads first: (n_critics, B)
        (grad,) = torch.autograd.grad(q, a)
        out[name] = float(grad.norm(dim=-1).median())
    return out


# A critic whose mean value at the demo states is off the demos' Monte-Carlo return by more than this
# share of the return's size has not settled (its TD targets will keep moving online).
SETTLED_TOLERANCE = 0.25


def discounted_returns(reward: np.ndarray, episode_end: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + γ(1 − end_t)·G_{t+1} over consecutive episodes stored in order (end_t marks a last step)."""
    if reward.shape != episode_end.shape or reward.ndim != 1:
        raise ValueError(f"reward {reward.shape} and episode_end {episode_end.shape} must be equal 1-d shapes.")
    out = np.zeros(len(reward), dtype=np.float64)
    running = 0.0
    for t in range(len(reward) - 1, -1, -1):
        running = float(reward[t]) + (0.0 if episode_end[t] else gamma * running)
        out[t] = running
    return out


@torch.no_grad()
def demo_value_check_inputs(learner: Learner, demos: ReplayBuffer) -> tuple[np.ndarray, np.ndarray]:
    """(reward the critic regresses on now, episode-end flags) for every stored demo step, in order."""
    reward, ended, _ = _demo_steps(learner, demos)
    return reward, ended


def _demo_steps(learner: Learner, demos: ReplayBuffer) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    batch = {name: demos.field(name) for name in FIELDS}
    reward = learner.reward(batch).numpy().astype(np.float64)
    ended = (batch["terminated"] > 0.5) | (batch["truncated"] > 0.5)
    ended[-1] = True
    return reward, ended, batch


@torch.no_grad()
def demo_value_check(learner: Learner, demos: ReplayBuffer, tolerance: float = SETTLED_TOLERANCE) -> dict[str, float]:
    """Critic (min over heads) at every demo (s, a_executed) vs the demos' discounted return under
    the reward the critic regresses on now (learned reward with the current q_φ; sparse for the baseline).

    The SARSA fixed point of critic pretraining is Q(s, a_demo) = that return; ``critic_rel_error``
    is RMS(Q − G)/mean|G|, and ``critic_settled`` is 1.0 when the mean gap is within ``tolerance``·mean|G|.
    Demo episodes that were truncated lack their tail, which biases G for them only (demos are successes).
    """
    reward, ended, batch = _demo_steps(learner, demos)
    returns = discounted_returns(reward, ended, learner.cfg.gamma)
    b = to_tensors(batch, learner.cfg.gamma)
    q = losses.reduce_heads(learner.critic(b["obs"], b["action"]), "min").numpy().astype(np.float64)
    scale = max(float(np.abs(returns).mean()), 1e-6)
    gap = float((q - returns).mean())
    return {"q_demo": float(q.mean()), "mc_demo": float(returns.mean()), "critic_gap": gap,
            "critic_rel_error": float(np.sqrt(np.mean(np.square(q - returns))) / scale),
            "critic_settled": float(abs(gap) <= tolerance * scale)}
