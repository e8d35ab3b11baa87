"""Reward and critic diagnostics (notebook 03): is the coherent reward shaped as the theory says?

- ``reward_vs_perturbation``: r(s, u_demo + ε) for growing ε — should peak at the demonstrated action.
- ``reward_far_from_data``: max_u |r(s + shift, u)| for growing state shifts — HetStat reverts to ≈ 0
  (the prior), an ordinary MLP head does not.
- ``action_gradient_norms``: ‖∇ₐQ‖ at demonstrated vs random actions after critic pretraining.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from cohirl.csil.learner import Learner, to_tensors

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
