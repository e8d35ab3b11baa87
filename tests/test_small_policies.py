"""Small policies: tanh-Gaussian densities, HetStat structure (paper.md step 3), MLP head options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cohirl.csil.losses import faithful_bc_loss
from cohirl.errors import CohirlError
from cohirl.csil.policy_heads import GaussianMLPPolicy, HetStatPolicy, ObsNormalizer, TanhNormal, triangle_wave

torch.set_num_threads(1)


def test_tanh_normal_density_integrates_to_one_and_is_finite_at_the_edges() -> None:
    dist = TanhNormal(torch.tensor([[0.8]], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64))
    n = 20000
    grid = ((torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 - 1).unsqueeze(-1)
    density = dist.log_prob(grid, eps=0.0).exp()
    assert abs(float(density.sum() * 2 / n) - 1.0) < 1e-3
    edge = dist.log_prob(torch.tensor([[1.0], [-1.0]], dtype=torch.float64))
    assert torch.isfinite(edge).all()


def test_log_prob_of_sample_matches_pre_tanh_computation() -> None:
    dist = TanhNormal(torch.randn(64, 3), torch.rand(64, 3) + 0.1)
    gen = torch.Generator().manual_seed(0)
    action, log_prob = dist.rsample_with_log_prob(gen)
    assert torch.allclose(dist.log_prob(action), log_prob, atol=1e-3)
    assert torch.equal(dist.mode(), torch.tanh(dist.mean))


def test_triangle_wave_shape() -> None:
    x = torch.tensor([0.0, math.pi / 2, math.pi, 3 * math.pi / 2, 2 * math.pi, -math.pi / 2])
    peak = 1.1107207345 * math.pi / 2
    expected = torch.tensor([0.0, peak, 0.0, -peak, 0.0, -peak])
    assert torch.allclose(triangle_wave(x), expected, atol=1e-5)
    assert torch.allclose(triangle_wave(x + 2 * math.pi), triangle_wave(x), atol=1e-5)


def test_hetstat_initialisation_zero_mean_prior_std_and_lower_triangular_variance() -> None:
    torch.manual_seed(0)
    policy = HetStatPolicy(5, 3, hidden=(16,), n_features=32)
    obs = torch.randn(10, 5) * 100
    dist = policy(obs)
    assert torch.equal(dist.mean, torch.zeros(10, 3))  # w = 0
    phi = policy.features(obs)
    expected_std = math.sqrt(0.75) * torch.tanh(torch.sqrt(1e-5 + phi.square().sum(-1, keepdim=True)))
    assert torch.allclose(dist.std, expected_std.expand(-1, 3), atol=1e-6)  # L_d = identity
    assert policy.log_lengthscales.detach().eq(-5.0).all()
    with torch.no_grad():  # the strict upper triangle of L_d must not matter
        policy.scale_tril += torch.triu(torch.randn_like(policy.scale_tril), diagonal=1)
    assert torch.allclose(policy(obs).std, dist.std, atol=1e-6)


def test_hetstat_variance_matches_per_dimension_formula() -> None:
    torch.manual_seed(1)
    policy = HetStatPolicy(4, 2, hidden=(8,), n_features=16)
    with torch.no_grad():
        policy.scale_tril.copy_(torch.randn_like(policy.scale_tril))
    phi = policy.features(torch.randn(7, 4))
    naive = torch.stack([(phi @ torch.tril(policy.scale_tril[d])).square().sum(-1) for d in range(2)], -1)
    assert torch.allclose(policy.variance(phi), naive, atol=1e-5)


def test_faithful_nll_does_not_move_the_mean_torso() -> None:
    torch.manual_seed(2)
    policy = HetStatPolicy(3, 2, hidden=(8,), n_features=16)
    with torch.no_grad():
        policy.loc_weights.normal_()
    dist = policy(torch.randn(32, 3), faithful=True)
    nll = -dist.detach_mean().log_prob(torch.rand(32, 2) * 1.8 - 0.9).mean()
    nll.backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in policy.torso.parameters())
    assert policy.loc_weights.grad is None or policy.loc_weights.grad.abs().max() == 0
    assert policy.scale_tril.grad.abs().max() > 0


def test_bc_loss_gradient_flows_to_both_heads() -> None:
    torch.manual_seed(3)
    policy = GaussianMLPPolicy(3, 2, hidden=(8,))
    loss, metrics = faithful_bc_loss(policy(torch.randn(32, 3), faithful=True), torch.rand(32, 2) - 0.5)
    loss.backward()
    assert policy.mean_layer.weight.grad.abs().max() > 0 and policy.log_std_layer.weight.grad.abs().max() > 0
    assert set(metrics) == {"bc_mse", "bc_nll"}


def test_mlp_zero_init_mean_and_fixed_std() -> None:
    policy = GaussianMLPPolicy(4, 2, hidden=(8, 8), zero_init_mean=True, fixed_std=0.05)
    dist = policy(torch.randn(6, 4))
    assert torch.equal(dist.mode(), torch.zeros(6, 2))
    assert torch.equal(dist.std, torch.full((6, 2), 0.05))
    learned = GaussianMLPPolicy(4, 2, hidden=(8,))(torch.randn(6, 4) * 50)
    assert (learned.std >= math.sqrt(1e-5)).all() and (learned.std <= 1 + math.sqrt(1e-5)).all()


def test_obs_normalizer_fits_and_is_saved() -> None:
    data = np.random.default_rng(0).normal(3.0, 2.0, (500, 4)).astype(np.float32)
    data[:, 3] = 1.0  # constant column: std floored, no division by zero
    norm = ObsNormalizer.from_array(data)
    out = norm(torch.as_tensor(data))
    assert torch.allclose(out[:, :3].mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-3)
    assert torch.isfinite(out).all()
    assert set(norm.state_dict()) == {"mean", "std"}
    policy = HetStatPolicy(4, 2, hidden=(8,), n_features=8, normalizer=norm)
    assert "obs_normalizer.mean" in policy.state_dict()


def test_bad_inputs_raise_cohirl_error() -> None:
    with pytest.raises(CohirlError, match="non-empty"):
        ObsNormalizer.from_array(np.zeros((0, 3), np.float32))
    with pytest.raises(CohirlError, match="expects observations"):
        HetStatPolicy(4, 2, hidden=(8,), n_features=8)(torch.zeros(3, 5))
    with pytest.raises(CohirlError, match="even"):
        HetStatPolicy(4, 2, n_features=7)
    with pytest.raises(CohirlError, match="fixed_std"):
        GaussianMLPPolicy(4, 2, fixed_std=0.0)
