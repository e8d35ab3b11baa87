"""Networks of the learner: a vectorised LayerNorm-MLP critic ensemble and the policy factory.

The critic scores the *executed* (composed) action (paper.md: "The critic always scores the
executed action"). Heads are evaluated in one batched matmul per layer ([n, B, ·]).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cohirl.csil.config import CRITIC_STYLES, LearnerConfig
from cohirl.errors import CohirlError
from cohirl.csil.policy_heads import GaussianMLPPolicy, HetStatPolicy, ObsNormalizer, SmallPolicy



class EnsembleLinear(nn.Module):
    """n independent linear layers applied to [n, B, in] with one batched matmul."""

    def __init__(self, n: int, n_in: int, n_out: int, orthogonal: bool = False) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)  # PyTorch's default nn.Linear initialisation, per head
        self.weight = nn.Parameter(torch.empty(n, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, n_out).uniform_(-bound, bound))
        if orthogonal:  # acme's LayerNormMLP: orthogonal weights, zero biases
            for head in self.weight.data:
                nn.init.orthogonal_(head)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the feature dim with a separate affine transform per head."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n, 1, dim))
        self.shift = nn.Parameter(torch.zeros(n, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) * self.scale + self.shift


class CriticEnsemble(nn.Module):
    """Q_i(s, a), i = 1..n, in one of two layer styles:

    * ``"layernorm_relu"`` (default, ResFiT): [Linear -> LayerNorm -> ReLU] × len(hidden) -> Linear;
    * ``"acme"`` (the official CSIL critic, acme's LayerNormMLP): Linear -> LayerNorm -> tanh, then
      [Linear -> ELU] for the other hidden layers -> Linear, orthogonal weights, zero biases.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        n_heads: int = 2,
        hidden: Sequence[int] = (256, 256),
        normalizer: ObsNormalizer | None = None,
        style: str = "layernorm_relu",
    ) -> None:
        super().__init__()
        if style not in CRITIC_STYLES:
            raise CohirlError(f"Unknown critic style {style!r}; use one of {CRITIC_STYLES}.")
        self.obs_dim, self.action_dim, self.n_heads = obs_dim, action_dim, n_heads
        self.obs_normalizer = normalizer or ObsNormalizer(obs_dim)
        acme = style == "acme"
        layers: list[nn.Module] = []
        n_in = obs_dim + action_dim
        for i, size in enumerate(hidden):
            layers.append(EnsembleLinear(n_heads, n_in, size, orthogonal=acme))
            if not acme:
                layers += [EnsembleLayerNorm(n_heads, size), nn.ReLU()]
            elif i == 0:
                layers += [EnsembleLayerNorm(n_heads, size), nn.Tanh()]
            else:
                layers.append(nn.ELU())
            n_in = size
        layers.append(EnsembleLinear(n_heads, n_in, 1, orthogonal=acme))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``obs`` [B, obs_dim] (raw), ``action`` [B, d] or per head [n, B, d] -> Q [n, B].

        Pass a per-head action leaf tensor to get each head's own ∇ₐQ_i from one backward pass.
        """
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise CohirlError(f"Critic expects observations [batch, {self.obs_dim}], got {tuple(obs.shape)}.")
        if action.ndim == 2:
            action = action.unsqueeze(0).expand(self.n_heads, -1, -1)
        if action.shape != (self.n_heads, obs.shape[0], self.action_dim):
            raise CohirlError(f"Critic action shape {tuple(action.shape)} does not match obs batch {obs.shape[0]}.")
        obs_n = self.obs_normalizer(obs).unsqueeze(0).expand(self.n_heads, -1, -1)
        return self.net(torch.cat([obs_n, action], dim=-1)).squeeze(-1)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """θ̄ ← (1 - τ)·θ̄ + τ·θ for every parameter (buffers are copied)."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)
    for tb, sb in zip(target.buffers(), source.buffers()):
        tb.copy_(sb)


def make_policy(cfg: LearnerConfig, obs_dim: int, action_dim: int, normalizer: ObsNormalizer | None = None) -> SmallPolicy:
    """The small policy selected by ``cfg.policy_head`` with the config's architecture fields."""
    if cfg.policy_head == "hetstat":
        return HetStatPolicy(
            obs_dim, action_dim, hidden=cfg.policy_hidden, bottleneck=cfg.hetstat_bottleneck,
            n_features=cfg.hetstat_features, prior_var=cfg.hetstat_prior_var,
            init_log_lengthscale=cfg.hetstat_init_log_lengthscale, activation=cfg.hetstat_activation,
            normalizer=normalizer,
        )
    return GaussianMLPPolicy(
        obs_dim, action_dim, hidden=cfg.policy_hidden, zero_init_mean=cfg.mlp_zero_init_mean,
        fixed_std=cfg.mlp_fixed_std, normalizer=normalizer,
    )


def make_critic(cfg: LearnerConfig, obs_dim: int, action_dim: int, normalizer: ObsNormalizer | None = None) -> CriticEnsemble:
    return CriticEnsemble(obs_dim, action_dim, cfg.n_critics, cfg.critic_hidden, normalizer, cfg.critic_style)
