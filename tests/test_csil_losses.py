"""Pure CSIL losses (paper.md steps 2, 4–6) and (d): the exact Gaussian KL vs Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch

from cohirl.csil import losses
from cohirl.csil.config import R_MAX
from cohirl.errors import CohirlError
from cohirl.csil.policy_heads import TanhNormal

torch.set_num_threads(1)


def test_d_exact_gaussian_kl_matches_monte_carlo_and_is_nonnegative() -> None:
    gen = torch.Generator().manual_seed(0)
    mean_p, std_p = torch.tensor([0.3, -1.0, 0.5]), torch.tensor([0.4, 0.9, 0.2])
    mean_q, std_q = torch.tensor([0.0, -0.5, 0.7]), torch.tensor([0.6, 0.5, 0.3])
    exact = float(losses.gaussian_kl(mean_p, std_p, mean_q, std_q))
    p, q = TanhNormal(mean_p, std_p), TanhNormal(mean_q, std_q)
    # Estimate in action space: log densities include the tanh Jacobian, which cancels in the KL.
    u = mean_p + std_p * torch.randn(200_000, 3, generator=gen)
    samples = (p.log_prob_from_pre_tanh(u) - q.log_prob_from_pre_tanh(u)).double()
    standard_error = float(samples.std() / math.sqrt(len(samples)))
    assert abs(float(samples.mean()) - exact) < 4 * standard_error + 1e-4, (float(samples.mean()), exact)
    assert exact > 0
    random_params = [torch.randn(100, 5), torch.rand(100, 5) + 0.05, torch.randn(100, 5), torch.rand(100, 5) + 0.05]
    assert (losses.gaussian_kl(*random_params) >= -1e-6).all()
    assert torch.allclose(losses.gaussian_kl(mean_p, std_p, mean_p, std_p), torch.tensor(0.0), atol=1e-7)


def test_r_max_and_coherent_reward_variants() -> None:
    assert abs(R_MAX - 6.4496) < 1e-3
    log_q, actions = torch.tensor([1.0, -2.0]), torch.zeros(2, 3)
    log_p = losses.uniform_log_prior(actions)
    assert torch.allclose(log_p, torch.full((2,), -3 * math.log(2)))
    positive = losses.coherent_reward(log_q, log_p, alpha=1 / 3, action_dim=3)
    assert torch.allclose(positive, (log_q + 3 * math.log(2)) / 3)
    nonpositive = losses.coherent_reward(log_q, log_p, 1 / 3, 3, variant="nonpositive")
    assert torch.allclose(nonpositive, positive - (1 / 3) * 3 * R_MAX)  # default shift α·d·R_max
    peaked = torch.tensor([3 * (R_MAX - math.log(2))])  # log q at the per-dimension density bound
    assert losses.coherent_reward(peaked, log_p[:1], 1 / 3, 3, variant="nonpositive").item() <= 1e-6
    with pytest.raises(CohirlError, match="variant"):
        losses.coherent_reward(log_q, log_p, 1 / 3, 3, variant="clipped")


def test_base_gaussian_prior_is_the_residual_off_data_limit() -> None:
    """A policy equal to the prior (mean at the base's equivalent, same std) gets reward 0."""
    u = torch.rand(16, 2) * 1.8 - 0.9
    center = torch.zeros(16, 2)
    log_p = losses.base_gaussian_log_prior(u, center, std=0.5)
    log_q = TanhNormal(torch.zeros(16, 2), torch.full((16, 2), 0.5)).log_prob(u)
    assert torch.allclose(losses.coherent_reward(log_q, log_p, 0.5, 2), torch.zeros(16), atol=1e-5)


def test_faithful_bc_loss_fits_mean_by_mse_only() -> None:
    mean = torch.tensor([[0.2, -0.1]], requires_grad=True)
    std = torch.tensor([[0.3, 0.4]], requires_grad=True)
    target = torch.tensor([[0.5, 0.0]])
    loss, metrics = losses.faithful_bc_loss(TanhNormal(mean, std), target)
    loss.backward()
    mse_grad = 2 * (torch.tanh(mean.detach()) - target) * (1 - torch.tanh(mean.detach()) ** 2) / 2
    assert torch.allclose(mean.grad, mse_grad, atol=1e-6)  # NLL adds nothing to the mean
    assert std.grad.abs().sum() > 0
    assert metrics["bc_mse"] > 0
    with pytest.raises(CohirlError, match="target"):
        losses.faithful_bc_loss(TanhNormal(mean, std), torch.zeros(2, 2))


def test_reward_refinement_loss_terms() -> None:
    demo, agent = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -10.0, 2.0])
    loss, metrics = losses.reward_refinement_loss(demo, agent)
    clipped = torch.tensor([0.0, -5.0, 2.0])
    expected_agent = (torch.exp(-clipped) - 1 + agent).mean()
    assert math.isclose(float(loss), -2.0 + float(expected_agent), rel_tol=1e-6)
    assert metrics["reward_demo"] == 2.0
    assert (torch.exp(-agent.clamp_min(-5)) - 1 + agent)[[0, 2]].ge(0).all()  # non-negative where r ≥ -5


def test_soft_td_target_clip_done_and_no_gradient() -> None:
    reward = torch.tensor([1.0, 1.0, 1.0])
    next_q = torch.tensor([10.0, 1000.0, 10.0], requires_grad=True)
    reg = torch.tensor([2.0, 0.0, 2.0])
    target = losses.soft_td_target(reward, torch.full((3,), 0.99), torch.tensor([0.0, 0.0, 1.0]), next_q, reg, 645.0)
    assert torch.allclose(target, torch.tensor([1 + 0.99 * 8.0, 1 + 0.99 * 645.0, 1.0]))
    assert not target.requires_grad
    with pytest.raises(CohirlError, match="next_q"):
        losses.soft_td_target(reward, reward, reward, torch.zeros(2), reward, 1.0)


def test_critic_loss_and_gradient_penalty() -> None:
    q = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    target = torch.tensor([1.0, 1.0])
    td, _ = losses.critic_loss(q, target)
    assert math.isclose(float(td), (0 + 1 + 4 + 1) / 4)
    grads = torch.tensor([[[3.0, 4.0]], [[0.0, 0.0]]])  # norms 5 and 0
    assert math.isclose(float(losses.action_gradient_penalty(grads)), math.sqrt(12.5), rel_tol=1e-5)
    total, metrics = losses.critic_loss(q, target, grads, penalty_weight=2.0)
    assert math.isclose(float(total), 1.5 + 2 * math.sqrt(12.5), rel_tol=1e-5)
    assert "critic_grad_penalty" in metrics
    with pytest.raises(CohirlError, match="target"):
        losses.critic_loss(q, torch.zeros(3))


def test_reduce_heads_and_actor_loss() -> None:
    q = torch.tensor([[1.0, 5.0], [2.0, 0.0], [-1.0, 3.0]])
    assert torch.equal(losses.reduce_heads(q, "min"), torch.tensor([-1.0, 0.0]))
    assert torch.allclose(losses.reduce_heads(q, "mean"), torch.tensor([2 / 3, 8 / 3]))
    assert torch.equal(losses.reduce_heads(q, "min", torch.tensor([0, 1])), torch.tensor([1.0, 0.0]))
    loss, metrics = losses.actor_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5]))
    assert float(loss) == -1.5 and metrics["actor_q"] == 2.0
