"""Small stochastic policies trained on top of a frozen base (paper.md, CSIL step 3).

Both heads map a float observation vector to a :class:`TanhNormal`: a diagonal Gaussian over the
pre-tanh variable ``u`` pushed through ``tanh`` so actions lie in (-1, 1)^d.

* :class:`HetStatPolicy` — CSIL's heteroscedastic stationary head. Far from the data its mean
  reverts to 0 and its variance to the prior, so the coherent reward log q - log p stays near 0
  there (no spurious reward to exploit).
* :class:`GaussianMLPPolicy` — an ordinary tanh-Gaussian MLP head (the ablation, and the actor of
  the sparse-reward residual baseline with a fixed exploration std).

Observations are raw concatenated vectors (state, environment state and, if the caller wants,
a_b); each policy owns an :class:`ObsNormalizer` applied first (identity unless fitted).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cohirl.errors import CohirlError

MIN_VAR = 1e-5  # CSIL's variance floor (also defines R_max, see cohirl.csil.losses)
_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_ACTION_EPS = 1e-6  # actions are clamped into (-1 + eps, 1 - eps) before atanh


class ObsNormalizer(nn.Module):
    """(x - mean) / std with statistics stored as buffers (saved in ``state_dict``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @classmethod
    def from_array(cls, data: np.ndarray | torch.Tensor, min_std: float = 1e-3) -> "ObsNormalizer":
        """Fit on ``data`` [N, dim]; ``min_std`` keeps constant columns from blowing up."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise CohirlError(f"ObsNormalizer.from_array needs a non-empty [N, dim] array, got {tuple(x.shape)}.")
        norm = cls(x.shape[1])
        norm.mean.copy_(x.mean(0))
        norm.std.copy_(x.std(0, unbiased=False).clamp_min(min_std))
        return norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _log_one_minus_tanh_sq(u: torch.Tensor) -> torch.Tensor:
    """log(1 - tanh(u)^2) computed without cancellation for large |u|."""
    return 2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))


class TanhNormal:
    """tanh(u), u ~ N(mean, std^2) diagonal; densities are over the last dimension (summed).

    ``mean``/``std`` are the pre-tanh Gaussian parameters (needed for the exact KL, see
    :func:`cohirl.csil.losses.gaussian_kl`); tanh is a bijection, so the KL between two
    TanhNormals equals the KL between their Gaussians.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != std.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} differ in shape")
        self.mean = mean
        self.std = std

    def pre_tanh_log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """Gaussian log density of the pre-tanh sample ``u`` (summed over action dims)."""
        z = (u - self.mean) / self.std
        return (-0.5 * z.square() - self.std.log() - _HALF_LOG_2PI).sum(-1)

    def log_prob_from_pre_tanh(self, u: torch.Tensor) -> torch.Tensor:
        """log density of a = tanh(u) including the tanh Jacobian (exact, no atanh)."""
        return self.pre_tanh_log_prob(u) - _log_one_minus_tanh_sq(u).sum(-1)

    def log_prob(self, action: torch.Tensor, eps: float = _ACTION_EPS) -> torch.Tensor:
        """log density of ``action`` in (-1, 1)^d; actions are clamped to ±(1 - eps) first."""
        u = torch.atanh(action.clamp(-1.0 + eps, 1.0 - eps))
        return self.log_prob_from_pre_tanh(u)

    def rsample_pre_tanh(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised pre-tanh sample u = mean + std·ε (the action is tanh(u))."""
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * noise

    def rsample_with_log_prob(
        self, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample and its exact log density (computed from the pre-tanh u)."""
        u = self.rsample_pre_tanh(generator)
        return torch.tanh(u), self.log_prob_from_pre_tanh(u)

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.rsample_with_log_prob(generator)[0]

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(generator)

    def mode(self) -> torch.Tensor:
        """tanh(mean): the evaluation action (paper.md step 3)."""
        return torch.tanh(self.mean)

    def rows(self, start: int, stop: int, detach: bool = False) -> "TanhNormal":
        """The distribution of rows ``start:stop`` (stop-gradiented with ``detach``)."""
        mean, std = self.mean[start:stop], self.std[start:stop]
        return TanhNormal(mean.detach(), std.detach()) if detach else TanhNormal(mean, std)

    def detach_mean(self) -> "TanhNormal":
        """The 'faithful' cut distribution: same std, mean stop-gradiented (step 4)."""
        return TanhNormal(self.mean.detach(), self.std)


def _orthogonal_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def elu_mlp(n_in: int, sizes: Sequence[int]) -> nn.Sequential:
    """Orthogonally initialised MLP with ELU after every layer (CSIL: activate_final=True)."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [_orthogonal_linear(n_in, size), nn.ELU()]
        n_in = size
    return nn.Sequential(*layers)


def triangle_wave(x: torch.Tensor) -> torch.Tensor:
    """CSIL's triangle activation: period 2π, slope π/(2√2) at 0 (matches sin's second moment)."""
    z = torch.floor(x / math.pi + 0.5)
    sign = 1.0 - 2.0 * torch.remainder(z, 2.0)  # (-1)^z
    return 1.1107207345 * (x - math.pi * z) * sign


_PERIODIC = {"triangle": triangle_wave, "sin": torch.sin}


class SmallPolicy(nn.Module):
    """Common interface: ``forward(obs, faithful=False) -> TanhNormal``.

    ``faithful=True`` returns the distribution whose std is computed from stop-gradiented
    features, so a likelihood loss fits the variance without moving the mean's torso (step 4).
    """

    obs_dim: int
    action_dim: int
    obs_normalizer: ObsNormalizer

    def _check_obs(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise CohirlError(
                f"{type(self).__name__} expects observations [batch, {self.obs_dim}], got {tuple(obs.shape)}."
            )
        return self.obs_normalizer(obs)


class HetStatPolicy(SmallPolicy):
    """Heteroscedastic stationary tanh-Gaussian policy (paper.md step 3; CSIL 'hetstattri').

    Torso MLP ``hidden`` + ``bottleneck`` (ELU after each) -> z. Features
    φ(z) = [h(WᵀΛz + π/4), h(WᵀΛz - π/4)] / √F with F = ``n_features`` entries in total
    (W: bottleneck × F/2, W ~ N(0, 1) trainable; Λ = diag(exp(ℓ)), ℓ trainable, init
    ``init_log_lengthscale`` = -5), h = triangle wave. Mean μ = φᵀw (w init 0). Variance per
    action dim v_d = ‖L_dᵀφ‖² with L_d lower-triangular (init identity);
    σ_d = σ_p·tanh(√(1e-5 + v_d)), σ_p² = ``prior_var`` = 0.75.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        bottleneck: int = 12,
        n_features: int = 256,
        prior_var: float = 0.75,
        init_log_lengthscale: float = -5.0,
        activation: str = "triangle",
        normalizer: ObsNormalizer | None = None,
    ) -> None:
        super().__init__()
        if n_features < 2 or n_features % 2:
            raise CohirlError(f"HetStatPolicy: n_features must be an even number ≥ 2, got {n_features}.")
        if activation not in _PERIODIC:
            raise CohirlError(f"HetStatPolicy: unknown activation {activation!r}; use one of {sorted(_PERIODIC)}.")
        self.obs_dim, self.action_dim, self.n_features = obs_dim, action_dim, n_features
        self.prior_std = math.sqrt(prior_var)
        self.periodic = _PERIODIC[activation]
        self.obs_normalizer = normalizer or ObsNormalizer(obs_dim)
        self.torso = elu_mlp(obs_dim, [*hidden, bottleneck])
        self.random_weights = nn.Parameter(torch.randn(bottleneck, n_features // 2))
        self.log_lengthscales = nn.Parameter(torch.full((bottleneck,), float(init_log_lengthscale)))
        self.loc_weights = nn.Parameter(torch.zeros(n_features, action_dim))
        self.scale_tril = nn.Parameter(torch.eye(n_features).repeat(action_dim, 1, 1))
        self.register_buffer("tril_mask", torch.tril(torch.ones(n_features, n_features)), persistent=False)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Stationary periodic features φ [batch, F] of (raw) observations."""
        z = self.torso(self._check_obs(obs))
        wx = (z * self.log_lengthscales.exp()) @ self.random_weights
        quarter = math.pi / 4.0
        phi = torch.cat([self.periodic(wx + quarter), self.periodic(wx - quarter)], dim=-1)
        return phi / math.sqrt(self.n_features)

    def variance(self, phi: torch.Tensor) -> torch.Tensor:
        """v_d = ‖L_dᵀφ‖² for every action dimension d, as one matrix product -> [batch, d]."""
        tril = self.scale_tril * self.tril_mask  # [d, F, F]
        stacked = tril.permute(1, 0, 2).reshape(self.n_features, -1)  # [F, d*F]
        proj = (phi @ stacked).view(phi.shape[0], self.action_dim, self.n_features)
        return proj.square().sum(-1)

    def forward(self, obs: torch.Tensor, faithful: bool = False) -> TanhNormal:
        phi = self.features(obs)
        mean = phi @ self.loc_weights
        var = self.variance(phi.detach() if faithful else phi)
        std = self.prior_std * torch.tanh(torch.sqrt(MIN_VAR + var))
        return TanhNormal(mean, std)


class GaussianMLPPolicy(SmallPolicy):
    """Ordinary tanh-Gaussian MLP head (CSIL's 'mlp' policy; the HetStat ablation).

    ELU MLP torso -> linear mean and a clamped log-std in [min_log_std, max_log_std] = [-5, 0]
    (std = √1e-5 + exp(log_std)), as CSIL's ClampedScaleNormalTanhDistribution.
    ``zero_init_mean`` zeroes the mean layer (the residual starts as the base: ResFiT).
    ``fixed_std`` replaces the learned std by a constant pre-tanh std (a TD3-style actor with
    Gaussian exploration noise, used by the sparse baseline with 0.05).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        zero_init_mean: bool = False,
        fixed_std: float | None = None,
        min_log_std: float = -5.0,
        max_log_std: float = 0.0,
        normalizer: ObsNormalizer | None = None,
    ) -> None:
        super().__init__()
        if fixed_std is not None and fixed_std <= 0:
            raise CohirlError(f"GaussianMLPPolicy: fixed_std must be > 0 (or None), got {fixed_std}.")
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.fixed_std, self.min_log_std, self.max_log_std = fixed_std, min_log_std, max_log_std
        self.obs_normalizer = normalizer or ObsNormalizer(obs_dim)
        self.torso = elu_mlp(obs_dim, hidden)
        self.mean_layer = _orthogonal_linear(hidden[-1], action_dim)
        self.log_std_layer = _orthogonal_linear(hidden[-1], action_dim)
        if zero_init_mean:
            nn.init.zeros_(self.mean_layer.weight)

    def forward(self, obs: torch.Tensor, faithful: bool = False) -> TanhNormal:
        h = self.torso(self._check_obs(obs))
        mean = self.mean_layer(h)
        if self.fixed_std is not None:
            return TanhNormal(mean, torch.full_like(mean, self.fixed_std))
        raw = self.log_std_layer(h.detach() if faithful else h)
        log_std = self.min_log_std + (self.max_log_std - self.min_log_std) * 0.5 * (torch.tanh(raw) + 1.0)
        return TanhNormal(mean, math.sqrt(MIN_VAR) + log_std.exp())
