"""The sparse-reward residual off-policy baseline (paper.md "The sparse-reward baselines"; ResFiT).

Same learner as CSIL, configured as: env reward (1 on success, episode ends on success), demo
transitions with r = 1 at their last step in half of every batch, a residual actor whose mean
layer starts at 0 (so it starts as the base), TD3-style Gaussian exploration of std 0.05, a
10-head LayerNorm critic ensemble with targets from the min over 2 random heads, n-step 3,
UTD 4, actor lr 1e-6, critic lr 1e-4, 10k warm-up env steps, 10k critic-only updates, no reward
learning, no KL to a BC policy. κ is the same as CSIL's (``DEFAULT_KAPPA``; ResFiT used 0.1): the
comparison should not hinge on the residual's reach. Profiles shorter than ResFiT's budgets must
lower ``critic_only_updates`` (the finetuning loop refuses a run whose actor would never train).
"""

from __future__ import annotations

from typing import Any

from cohirl.csil.config import LearnerConfig
from cohirl.policies.compose import DEFAULT_KAPPA, Composition

SPARSE_RESIDUAL_DEFAULTS: dict[str, Any] = {
    "reward_source": "sparse",
    "refine_reward": False,
    "pretrain_critic": False,
    "actor_reg": "none",
    "policy_head": "mlp",
    "mlp_zero_init_mean": True,
    "mlp_fixed_std": 0.05,  # exploration std (pre-tanh; ≈ action-space std near 0)
    "n_critics": 10,
    "critic_target_heads": 2,
    "actor_q_reduction": "mean",  # REDQ/ResFiT: the actor maximises the ensemble mean
    "grad_penalty_weight": 0.0,
    "n_step": 3,
    "utd": 4,  # profiles may lower it
    "actor_lr": 1e-6,
    "critic_lr": 1e-4,
    "warmup_steps": 10_000,
    "critic_only_updates": 10_000,
    "bc_steps": 0,
}


def sparse_residual_config(**overrides: Any) -> LearnerConfig:
    """LearnerConfig of the ResFiT-style baseline; keyword overrides replace any field."""
    return LearnerConfig().with_(**{**SPARSE_RESIDUAL_DEFAULTS, **overrides})


def sparse_residual_composition(kappa: float = DEFAULT_KAPPA) -> Composition:
    return Composition(mode="residual", kappa=kappa)
